"""Compile a model for an executable target and save it as a .lgc file that lgc.load rebuilds.

MODEL is a .pt checkpoint (lowered first), a .lgc circuit or a netlist. The output file holds the
optimised circuit and the target's name; the built library is cached by content hash.
"""
from __future__ import annotations

import argparse
import time

from ._common import add_model_argument, add_opt_level, read_model

HELP = "lower, optimise and compile a model for a target; save it as .lgc"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_argument(p)
    p.add_argument("--target", "-t", default="cpu", help="executable target (default cpu = the fastest here; lgc bench --list shows them)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the .lgc file to write")
    add_opt_level(p)
    p.add_argument("--threads", type=int, help="threads the compiled net uses (default: the backend's choice)")


def run(args: argparse.Namespace) -> int:
    from lgc.api import optimize
    from lgc.backends import build
    if not args.output.endswith(".lgc"):
        raise ValueError(f"-o {args.output!r}: a compiled net is saved as a .lgc file (use lgc export for netlists)")
    circuit = read_model(args.model)
    t0 = time.perf_counter()
    small = optimize(circuit, args.opt_level) if args.opt_level else circuit
    t_opt = time.perf_counter() - t0
    t0 = time.perf_counter()
    net = build(small, args.target, threads=args.threads)
    t_build = time.perf_counter() - t0
    net.save(args.output)
    print(f"{args.model}: {circuit.num_gates} gates -> {small.num_gates} after O{args.opt_level} ({t_opt:.2f} s); "
          f"built for {net.target} in {t_build:.2f} s; wrote {args.output}")
    return 0
