"""Train a logic gate network (or a baseline MLP) with difflogic's experiment options.

Writes a run directory (--out, default runs/<dataset>-...): config.json, metrics.jsonl (one JSON
object per evaluation), last.pt / best.pt checkpoints (best by validation accuracy, eval mode),
state.pt for --resume, final.json. With --compile the best checkpoint is lowered, optimised and
compiled, and the compiled net's test accuracy must equal the eval-mode accuracy on the same
binarised inputs (exit 1 otherwise).

Binarisation is one rule per dataset (lgc.data): MNIST trains on grey values and evaluates and
compiles on x > 0.5; CIFAR-10 uses (i+1)/(n+1) thresholds per channel value; the scikit-learn
sets and CSV files use per-feature thresholds from the training split.

Multi-GPU / multi-process: torchrun --nproc_per_node=N -m lgc train ... (DistributedDataParallel;
-bs is per process; rank 0 evaluates and writes the run directory).

Example (difflogic's small MNIST model, 48K gates):
  lgc train --dataset mnist20x20 -k 8000 -l 6 -t 10 -bs 100 -ni 200000 -ef 1000 --compile

Convolutional (--arch conv, image datasets only; -k/-l then size the FC layers after the conv blocks;
more commands, CIFAR-10 included, in lgc/train.py's docstring):
  lgc train --dataset mnist --arch conv --conv-channels 8 --conv-blocks 2 --conv-padding 0 \
      --conv-residual 2 -k 6000 -l 2 -t 10 -bs 128 -lr 0.02 --connections random -ni 14000 -ef 2000 --compile
"""
from __future__ import annotations

import argparse
import sys

HELP = "train a logic gate network (difflogic's experiment options)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from lgc.data import DATASETS
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    g = p.add_argument_group("experiment (difflogic's names)")
    g.add_argument("--dataset", default="mnist20x20", metavar="NAME",
                   help="one of: " + "; ".join(f"{k} ({v})" for k, v in DATASETS.items()))
    g.add_argument("-k", "--num-neurons", type=int, default=8000, help="gates per layer (default 8000)")
    g.add_argument("-l", "--num-layers", type=int, default=6, help="logic layers (default 6)")
    g.add_argument("-t", "--tau", type=float, default=10.0, help="group-sum temperature (default 10)")
    g.add_argument("-bs", "--batch-size", type=int, default=128, help="batch size (default 128)")
    g.add_argument("-lr", "--learning-rate", type=float, default=0.01, help="Adam learning rate (default 0.01)")
    g.add_argument("-ni", "--num-iterations", type=int, default=100_000, help="training steps (default 100000)")
    g.add_argument("-ef", "--eval-freq", type=int, default=2000, help="evaluate and checkpoint every N steps (default 2000)")
    g.add_argument("--connections", choices=("unique", "random"), default="unique", help="wiring (default unique)")
    g.add_argument("--grad-factor", type=float, default=1.0, help="gradient scale per layer (default 1)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--implementation", default="auto", help="auto, python, cpu or cuda (default auto)")
    g.add_argument("-vss", "--valid-set-size", type=float, default=0.0,
                   help="fraction of the training set held out for validation / best-checkpoint selection (default 0)")
    g.add_argument("-ebs", "--eval-batch-size", type=int, default=4096, help="evaluation batch size (default 4096)")
    c = p.add_argument_group("architecture")
    c.add_argument("--arch", choices=("fc", "conv"), default="fc",
                   help="fc: difflogic's fully connected network (default); conv: LogicTreeNet-shaped conv blocks, "
                        "then -l layers of -k gates (image datasets only)")
    c.add_argument("--conv-channels", type=int, default=8, help="conv: channels of block 1; block i has k*4^i, at most 32k (default 8)")
    c.add_argument("--conv-depth", type=int, default=3, help="conv: logic tree depth, 1..4 (default 3)")
    c.add_argument("--conv-blocks", type=int, default=2, help="conv: [3x3 tree conv + 2x2 OR pool] blocks (default 2)")
    c.add_argument("--conv-padding", type=int, default=1, help="conv: padding of each 3x3 conv (default 1)")
    c.add_argument("--conv-no-last-pool", action="store_true",
                   help="conv: no OR pool after the last block (the FC layers read 4x the bits; fewer gates)")
    c.add_argument("--conv-residual", type=float, default=5.0, metavar="LOGIT",
                   help="conv: residual init, the pass-through gate's logit (default 5 as the paper; 0: random init)")
    g.add_argument("--relaxation", choices=("softmax", "gumbel-st", "hard-st"), default="softmax",
                   help="training relaxation of the gate choice: softmax mixture (difflogic, default), or one hard gate "
                        "per neuron forward, Gumbel-sampled or argmax, with the softmax gradient (straight-through)")
    g.add_argument("--parametrization", choices=("gates", "inputwise"), default="gates",
                   help="gate logits: gates (16 per gate, softmax; difflogic, default) or inputwise (4 per gate, one "
                        "sigmoid per truth-table row; Ruttgers et al. 2025: fewer steps to converge)")
    g.add_argument("--temperature", type=float, default=1.0, help="relaxation temperature T (default 1)")
    g.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                   help="learning rate: constant (difflogic, default) or cosine decay to 0 over the run")
    g.add_argument("--anneal-to", type=float, metavar="T1",
                   help="anneal T geometrically to T1 over the last part of the run (e.g. 0.05: the relaxed gates "
                        "harden, so the network adapts to the circuit it becomes)")
    g.add_argument("--anneal-from", type=float, default=0.8, metavar="FRACTION",
                   help="fraction of the steps after which annealing starts (default 0.8)")
    g.add_argument("--baseline", action="store_true", help="train difflogic's baseline MLP instead (Linear+ReLU)")
    o = p.add_argument_group("run")
    o.add_argument("--out", metavar="RUN_DIR", help="run directory (default runs/<dataset>-<kind>-k<k>-l<l>-s<seed>)")
    o.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    o.add_argument("--compile", action="store_true", help="compile the best checkpoint and check it equals eval mode")
    o.add_argument("--target", default="cpu", help="target for --compile (default cpu)")
    o.add_argument("-O", "--opt-level", type=int, default=2, choices=(0, 1, 2, 3), help="optimisation level (default 2)")
    o.add_argument("--plot", action="store_true", help="draw learning curves and the gate histogram at the end")
    o.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    o.add_argument("--threads", type=int, help="CPU threads for training (default: torch's default; 1 is best on a busy machine)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    d = p.add_argument_group("data")
    d.add_argument("--data-dir", help="dataset folder (default $LGC_DATA_DIR, else ~/.cache/lgc/data)")
    d.add_argument("--no-download", action="store_true", help="never download missing files")
    d.add_argument("--binarize", help="tabular sets: quantile:N, uniform:N or threshold:T")
    d.add_argument("--csv-label", default="-1", help="csv: the label column's name or index (default last)")


def config_from_args(args: argparse.Namespace):
    from lgc.train import TrainConfig
    return TrainConfig(
        dataset=args.dataset, num_neurons=args.num_neurons, num_layers=args.num_layers, tau=args.tau,
        batch_size=args.batch_size, learning_rate=args.learning_rate, num_iterations=args.num_iterations,
        eval_freq=args.eval_freq, connections=args.connections, grad_factor=args.grad_factor, seed=args.seed,
        implementation=args.implementation, valid_set_size=args.valid_set_size, eval_batch_size=args.eval_batch_size,
        compile=args.compile, target=args.target, opt_level=args.opt_level, baseline=args.baseline, out=args.out,
        data_dir=args.data_dir, download=not args.no_download, binarize=args.binarize, csv_label=args.csv_label,
        resume=args.resume, progress=not args.no_progress, device=args.device,
        threads=args.threads, arch=args.arch, conv_channels=args.conv_channels, conv_depth=args.conv_depth,
        conv_blocks=args.conv_blocks, conv_padding=args.conv_padding,
        conv_residual=args.conv_residual, conv_last_pool=not args.conv_no_last_pool, relaxation=args.relaxation,
        parametrization=args.parametrization, temperature=args.temperature, anneal_to=args.anneal_to,
        anneal_from=args.anneal_from, lr_schedule=args.lr_schedule)


def run(args: argparse.Namespace) -> int:
    from lgc.train import CheckFailed, default_run_dir, train
    cfg = config_from_args(args)
    if args.resume and not args.out:
        cfg.out = str(default_run_dir(cfg))
    try:
        summary = train(cfg)
    except CheckFailed as e:
        print(f"lgc train: check failed: {e}", file=sys.stderr)
        return 1
    if summary and args.plot:
        from lgc.cli.plot import plot_run
        for path in plot_run(summary["run_dir"]):
            print(f"wrote {path}")
    return 0
