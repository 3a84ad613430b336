"""Train a logic gate network (or a baseline MLP) with difflogic's experiment options.

Writes a run directory (--out, default runs/<dataset>-...; printed at the start): config.json,
metrics.jsonl (one JSON object per evaluation), last.pt / best.pt checkpoints (best by validation
accuracy, eval mode, among checkpoints within --gate-budget), state.pt for --resume, final.json.
With --compile the best checkpoint is lowered, optimised and compiled, and the compiled net's test
accuracy must equal the eval-mode accuracy on the same binarised inputs (exit 1 otherwise). Every
option is checked before the first step (dataset, target, files, matplotlib for --plot).

--resume continues the run in --out from its last checkpoint, with the same options; only these may
change (each change is recorded in resume.jsonl and config.json): -ni, -ef, -ebs, --compile,
--target, -O, --plot, --device, --threads, --implementation, --no-progress, --data-dir,
--no-download. Any other difference is refused by name. A directory whose run stopped before its
first checkpoint is started over.

Binarisation is one rule per dataset (lgc.data): MNIST trains on grey values and evaluates and
compiles on x > 0.5 (--binarize levels:3: three bit planes x > 0.25, 0.5, 0.75, trained on bits);
CIFAR-10 uses (i+1)/(n+1) thresholds per channel value; the scikit-learn sets and CSV files use
per-feature thresholds from the training split.

Multi-GPU / multi-process: torchrun --nproc_per_node=N -m lgc train ... (DistributedDataParallel;
-bs is per process; rank 0 evaluates and writes the run directory).

Example (difflogic's small MNIST model, 48K gates):
  lgc train --dataset mnist20x20 -k 8000 -l 6 -t 10 -bs 100 -ni 200000 -ef 1000 --compile

Convolutional (--arch conv, image datasets only; -k/-l then size the FC layers after the conv
blocks): the MNIST recipe of experiments/conv_mnist/LOG.md (80 epochs of 468 steps; 97.60% mean
test accuracy over 8 seeds at 24-27K O2 gates):
  lgc train --dataset mnist20x20 --binarize levels:3 --arch conv --conv-channels 12 --conv-blocks 2 \\
      --conv-padding 0 --conv-residual 2 --conv-no-last-pool --parametrization inputwise -k 8000 -l 2 \\
      -t 10 -bs 128 -lr 0.02 --lr-schedule cosine -ni 37440 -ef 2340 --gate-budget 26854 --compile
CIFAR-10 on a GPU, the paper's LogicTreeNet shape (take k, tau and epochs from its tables):
  lgc train --dataset cifar-10-3-thresholds --arch conv --conv-channels 32 --conv-blocks 4 \\
      -k 20480 -l 3 -t 20 -bs 128 -lr 0.02 -ni 200000 -ef 5000 -vss 0.1 --compile --device cuda
"""
from __future__ import annotations

import argparse
import sys

HELP = "train a logic gate network (difflogic's experiment options)"

_GROUPS = {"experiment": "experiment (difflogic's names)", "architecture": "architecture", "run": "run",
           "data": "data"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from lgc.training.config import TrainConfig
    from lgc.training.options import add_arguments as add_config_arguments
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(p, TrainConfig, _GROUPS)


def config_from_args(args: argparse.Namespace):
    from lgc.training.config import TrainConfig
    from lgc.training.options import from_arguments
    return from_arguments(TrainConfig, args)


def run(args: argparse.Namespace) -> int:
    from lgc.training import CheckFailed, default_run_dir, train
    cfg = config_from_args(args)
    if not cfg.out:
        cfg.out = str(default_run_dir(cfg))
    try:
        summary = train(cfg)
    except CheckFailed as e:
        print(f"lgc train: check failed: {e}", file=sys.stderr)
        return 1
    if summary and cfg.plot:
        from lgc.cli.plot import plot_run
        for path in plot_run(summary["run_dir"]):
            print(f"wrote {path}")
    if summary:
        print(f"run directory: {summary['run_dir']}")
    return 0
