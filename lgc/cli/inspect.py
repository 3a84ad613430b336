"""Show a circuit's statistics: gates by op, depth, fan-out, unused inputs and dead gates.

FILE is a ``.lgc`` circuit or compiled net, a text/BLIF/AIGER netlist, a ``.pt`` checkpoint, or
``example`` for the small built-in circuit. ``--draw`` renders a small region with networkx.
"""
from __future__ import annotations

import argparse
import json

HELP = "show statistics of a circuit, compiled net or checkpoint"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="a .lgc/.txt/.blif/.aag/.aig/.pt file, or 'example'")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.add_argument("--text", action="store_true", help="print the circuit in lgc's text form")
    p.add_argument("--draw", metavar="PNG", help="draw the region feeding --output-node with networkx")
    p.add_argument("--output-node", type=int, default=None, help="node whose input cone --draw shows (default: first output)")
    p.add_argument("--draw-depth", type=int, default=3, help="levels of the cone to draw (default 3)")


def read_circuit(path: str):
    """Any file the CLI accepts -> Circuit."""
    from lgc.ir import example_circuit
    if path == "example":
        return example_circuit()
    if path.endswith((".pt", ".pth")):
        from lgc.api import lower
        from lgc.frontend import load_checkpoint
        return lower(load_checkpoint(path))
    from lgc.backends import load
    loaded = load(path, option=None)  # an unknown suffix: the hint says to rename (no option names a format)
    return getattr(loaded, "circuit", loaded)


def run(args: argparse.Namespace) -> int:
    circuit = read_circuit(args.file)
    if args.text:
        print(circuit.to_text(), end="")
        return 0
    st = circuit.stats()
    if args.json:
        print(json.dumps(st.to_json(), indent=2))
    else:
        print(f"{args.file}: {circuit!r}")
        print(st)
    if args.draw:
        from lgc.ir.draw import draw_cone
        node = int(circuit.outputs[0]) if args.output_node is None else args.output_node
        draw_cone(circuit, node, args.draw, depth=args.draw_depth)
        print(f"drew the cone of node {node} to {args.draw}")
    return 0
