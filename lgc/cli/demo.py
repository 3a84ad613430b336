"""The whole job in about a minute, offline: train, lower, optimise, compile, check, measure.

Trains a small logic gate network on scikit-learn's 8x8 digits (each pixel binarised with
quantile thresholds from the training split), lowers it to a gate-level circuit, optimises it
(O2), compiles it for every available CPU target, checks every compiled net predicts exactly
what the PyTorch model predicts in eval mode (exit 1 if not), and prints test accuracy, gates
before/after optimisation and samples/s per target. Needs no data files and no network.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np

from ._common import samples_per_second

HELP = "train, compile and check a small network on scikit-learn digits (offline, ~1 minute)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-ni", "--num-iterations", type=int, default=2000, help="training steps (default 2000)")
    p.add_argument("-k", "--num-neurons", type=int, default=2000, help="gates per layer (default 2000)")
    p.add_argument("-l", "--num-layers", type=int, default=4, help="logic layers (default 4)")
    p.add_argument("--out", metavar="RUN_DIR", help="keep the run directory here (default: a temporary folder)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--targets", help="comma-separated targets to compile for (default: every available CPU target)")


def run(args: argparse.Namespace) -> int:
    from lgc._optional import require
    for module in ("torch", "sklearn"):
        require(module, extra="train", purpose="lgc demo")   # before any work, not after training
    from lgc.api import lower, optimize
    from lgc.backends import available_targets, build
    from lgc.training import TrainConfig, train
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lgc-demo-") as tmp:
        cfg = TrainConfig(dataset="digits", num_neurons=args.num_neurons, num_layers=args.num_layers, tau=10.0 / 3,
                          batch_size=64, learning_rate=0.01, num_iterations=args.num_iterations,
                          eval_freq=max(args.num_iterations // 4, 1), seed=args.seed, out=args.out or f"{tmp}/run",
                          progress=sys.stderr.isatty(), device="cpu", threads=1)
        print(f"lgc demo: training a {cfg.num_layers} x {cfg.num_neurons}-gate logic network on scikit-learn digits "
              f"({cfg.num_iterations} steps)")
        summary = train(cfg, log=lambda s: print("  " + s))
        from lgc.data import load_dataset
        from lgc.frontend import load_checkpoint
        data = load_dataset("digits")
        model = load_checkpoint(summary["checkpoint"]).eval()
        from lgc.training import predict_model
        eval_pred = predict_model(model, data, data.x_test, train_mode=False, device="cpu")
        circuit = lower(model)
        t0 = time.perf_counter()
        small, report = optimize(circuit, 2, report=True)
        t_opt = time.perf_counter() - t0
        print(f"test accuracy (eval mode): {100 * np.mean(eval_pred == data.y_test):.2f}% on {len(data.y_test)} digits")
        print(f"gates: {circuit.num_gates} lowered -> {small.num_gates} after O2 ({t_opt:.2f} s); "
              f"depth {small.stats().depth if hasattr(small.stats(), 'depth') else '?'}")
        targets = args.targets.split(",") if args.targets else [t for t in available_targets() if t != "cpu"]
        bits = data.bits(data.x_test)
        print(f"{'target':12s} {'compile s':>9s} {'samples/s':>14s}  agrees with the model")
        failed = False
        for target in targets:
            t0 = time.perf_counter()
            net = build(small, target)
            t_build = time.perf_counter() - t0
            pred_raw = net.predict(data.x_test)          # raw pixels through the circuit's input encoder
            pred_bits = net.predict(bits)               # the same bits the model saw
            ok = bool(np.array_equal(pred_raw, eval_pred) and np.array_equal(pred_bits, eval_pred))
            failed |= not ok
            sps = samples_per_second(net, bits, min_seconds=0.3)
            print(f"{net.target:12s} {t_build:9.2f} {sps:14,.0f}  {'yes' if ok else 'NO'}")
    print(f"done in {time.perf_counter() - t_all:.0f} s")
    if failed:
        print("lgc demo: a compiled net disagrees with the model", file=sys.stderr)
        return 1
    return 0
