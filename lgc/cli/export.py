"""Write a model as a netlist or hardware file: Verilog, BLIF, AIGER, .lgc or lgc's text form.

The format comes from --format or the output's suffix (.v, .blif, .aag/.aig, .lgc, .txt).
"""
from __future__ import annotations

import argparse

from ._common import add_model_argument, add_opt_level, read_model

HELP = "write a model as Verilog, BLIF, AIGER, .lgc or text"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_argument(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")
    p.add_argument("--format", "-f", help="file format: verilog, blif, aiger, lgc, text, ... (default: from the suffix)")
    add_opt_level(p)


def run(args: argparse.Namespace) -> int:
    from lgc.api import optimize
    from lgc.backends import export, format_for_path
    fmt = format_for_path(args.output, args.format, option="--format").FORMAT  # refuse before reading the model
    circuit = read_model(args.model)
    small = optimize(circuit, args.opt_level) if args.opt_level else circuit
    export(small, args.output, format=fmt)
    print(f"{args.model}: {circuit.num_gates} gates -> {small.num_gates} after O{args.opt_level}; wrote {args.output}")
    return 0
