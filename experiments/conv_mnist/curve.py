"""A run directory's learning curve as a markdown table (epoch, accuracies, O2 gates, training time).

    python experiments/conv_mnist/curve.py experiments/conv_mnist/runs/recipe-seed0
"""
from __future__ import annotations

import sys

from lgc.training import load_config, read_metrics


def main(run_dir: str) -> None:
    cfg = load_config(run_dir)
    per_epoch = 60_000 // cfg.batch_size
    print("| epoch | step | test (eval mode) | test (train mode) | train subset (eval mode) | O2 gates | training s |")
    print("|---|---|---|---|---|---|---|")
    for m in read_metrics(run_dir):
        print(f"| {m['step'] / per_epoch:g} | {m['step']} | {100 * m['test_acc_eval']:.2f}% | "
              f"{100 * m['test_acc_train']:.2f}% | {100 * m['train_acc_eval']:.2f}% | {m.get('gates_O2', '-')} | "
              f"{m['train_seconds']:.0f} |")


if __name__ == "__main__":
    main(sys.argv[1])
