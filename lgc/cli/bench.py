"""Measure compile time and samples/s of every available target on one model.

MODEL defaults to a random difflogic-shaped network (784 -> 6 x 8000 -> 10 classes; --shape
changes it). Inputs are random bool bits, packing and readout included in the timing. Each
target's results are checked against the reference simulator on the first 256 samples (exit 1
if one differs). The ratio column compares with the numpy reference, or with difflogic-style
generated C (--difflogic: one statement per gate, gcc -O1, as difflogic's CompiledLogicNet).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ._common import add_opt_level, read_model, samples_per_second

HELP = "compile time and samples/s per target"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", nargs="?", help="a .pt/.lgc/netlist file (default: a random network of --shape)")
    p.add_argument("--shape", default="784,8000x6,10",
                   help="random network: INPUTS,WIDTHxLAYERS,CLASSES (default 784,8000x6,10)")
    p.add_argument("--targets", help="comma-separated targets (default: every available one)")
    p.add_argument("--batch", type=int, default=65536, help="samples per call (default 65536)")
    p.add_argument("--threads", type=int, default=1, help="threads per compiled net (default 1)")
    p.add_argument("--seconds", type=float, default=1.0, help="minimum timing per target (default 1)")
    add_opt_level(p)
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--list", action="store_true", help="list targets and why unavailable ones are, then exit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--difflogic", action="store_true",
                   help="also time difflogic-style generated C (one statement per gate, gcc -O1) as the baseline")


def _random_circuit(shape: str, seed: int):
    from lgc.ir import random_layered_circuit
    try:
        n_in, hidden, k = shape.split(",")
        width, layers = hidden.lower().split("x")
        return random_layered_circuit(int(n_in), [int(width)] * int(layers), num_classes=int(k), tau=10.0, seed=seed)
    except ValueError as e:
        raise ValueError(f"--shape {shape!r}: expected INPUTS,WIDTHxLAYERS,CLASSES such as 784,8000x6,10 ({e})") from e


def run(args: argparse.Namespace) -> int:
    from lgc.api import optimize
    from lgc.backends import available_targets, build, unavailable_reasons
    from lgc.ir import simulate
    if args.list:
        for target, why in unavailable_reasons().items():
            print(f"{target:12s} {'available' if why is None else 'unavailable: ' + why}")
        return 0
    if args.batch < 1 or args.threads < 1:
        raise ValueError("--batch and --threads must be positive")
    circuit = read_model(args.model) if args.model else _random_circuit(args.shape, args.seed)
    t0 = time.perf_counter()
    small = optimize(circuit, args.opt_level) if args.opt_level else circuit
    t_opt = time.perf_counter() - t0
    targets = args.targets.split(",") if args.targets else [t for t in available_targets() if t != "cpu"]
    rng = np.random.default_rng(args.seed)
    bits = rng.random((args.batch, small.num_inputs)) < 0.5
    check = simulate(small, bits[:256])
    print(f"model: {args.model or 'random ' + args.shape}: {circuit.num_gates} gates -> {small.num_gates} "
          f"after O{args.opt_level} ({t_opt:.2f} s); batch {args.batch}, threads {args.threads}")
    print(f"{'target':12s} {'compile s':>10s} {'samples/s':>14s} {'ratio':>9s}  check")
    rows, failed = [], False
    for target in targets:
        t0 = time.perf_counter()
        net = build(small, target, threads=args.threads)
        t_build = time.perf_counter() - t0
        ok = bool(np.array_equal(net(bits[:256]), check))
        failed |= not ok
        sps = samples_per_second(net, bits, min_seconds=args.seconds)
        rows.append({"target": net.target, "compile_seconds": t_build, "samples_per_second": sps, "matches_reference": ok})
    if args.difflogic:
        from lgc.backends.bench import DifflogicBaseline
        n64 = max(64, len(bits) // 64 * 64)
        x64 = bits[:n64] if len(bits) >= 64 else np.resize(bits, (64, bits.shape[1]))
        base_net = DifflogicBaseline(small)
        ok = bool(np.array_equal(base_net(x64[:64]), simulate(small, x64[:64])))
        failed |= not ok
        rows.append({"target": "difflogic-C", "compile_seconds": base_net.compile_seconds,
                     "samples_per_second": samples_per_second(base_net, x64, min_seconds=args.seconds),
                     "matches_reference": ok})
    base = next((r["samples_per_second"] for r in rows if r["target"] == ("difflogic-C" if args.difflogic else "numpy")),
                None)
    for r in rows:
        ratio = f"{r['samples_per_second'] / base:8.1f}x" if base else "        -"
        print(f"{r['target']:12s} {r['compile_seconds']:10.2f} {r['samples_per_second']:14,.0f} {ratio}  "
              f"{'ok' if r['matches_reference'] else 'MISMATCH'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model or args.shape, "gates_before": circuit.num_gates, "gates_after": small.num_gates,
                       "batch": args.batch, "threads": args.threads, "results": rows}, f, indent=2)
    return 1 if failed else 0
