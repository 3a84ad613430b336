"""Write a model as a netlist or hardware file (Verilog, BLIF, AIGER, .lgc, lgc's text form), or as
LLVM IR (.ll) or an object file (.o) for any LLVM target triple, with a C header (.h).

The format comes from --format or the output's suffix (.v, .blif, .aag/.aig, .lgc, .txt, .ll, .o).
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
    target = p.add_argument_group("object files (.o) and LLVM IR (.ll)")
    target.add_argument("--triple", help="LLVM target triple, e.g. aarch64-linux-gnu, wasm32-unknown-unknown, "
                        "thumbv7em-none-eabi (default: this host's)")
    target.add_argument("--cpu", help="LLVM CPU name, e.g. cortex-m4; 'native' = this host's CPU and features")
    target.add_argument("--features", help="LLVM target features, e.g. +avx2 or +simd128 (they set the vector width)")
    target.add_argument("--vector-words", type=int, help="64-bit words per vector (default: from the target)")


def run(args: argparse.Namespace) -> int:
    from lgc.api import optimize
    from lgc.backends import export, format_for_path
    fmt = format_for_path(args.output, args.format, option="--format").FORMAT  # refuse before reading the model
    circuit = read_model(args.model)
    small = optimize(circuit, args.opt_level) if args.opt_level else circuit
    options = {k: v for k, v in (("triple", args.triple), ("cpu", args.cpu), ("features", args.features),
                                 ("vector_words", args.vector_words)) if v is not None}
    if options and fmt not in ("object", "llvm-ir"):
        raise ValueError(f"--{next(iter(options)).replace('_', '-')} applies to object files (.o) and LLVM IR (.ll) only")
    export(small, args.output, format=fmt, **options)
    print(f"{args.model}: {circuit.num_gates} gates -> {small.num_gates} after O{args.opt_level}; wrote {args.output}")
    return 0
