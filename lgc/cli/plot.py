"""Draw a training run's learning curves and the trained network's gate-type histogram.

RUN is a run directory written by ``lgc train``; the figures go into it (or --out-dir) as
learning_curves.png and gate_histogram.png (matplotlib, Agg backend: no display needed).
"""
from __future__ import annotations

import argparse
import pathlib

HELP = "draw learning curves and the gate histogram of a training run"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN", help="a run directory written by lgc train")
    p.add_argument("--out-dir", help="where to write the PNG files (default: the run directory)")


def plot_run(run_dir: str, out_dir: str | None = None) -> list[pathlib.Path]:
    """Write the figures; returns their paths. Raises FileNotFoundError for a non-run folder and
    ``lgc._optional.MissingDependency`` (one line naming ``lgc[plot]``) without matplotlib."""
    from lgc._optional import require
    require("matplotlib", extra="plot", purpose="lgc plot")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lgc.training import read_metrics
    run = pathlib.Path(run_dir)
    metrics = read_metrics(run)
    if not metrics:
        raise FileNotFoundError(f"{run / 'metrics.jsonl'} is missing or empty: not a finished evaluation of an lgc run")
    out = pathlib.Path(out_dir) if out_dir else run
    out.mkdir(parents=True, exist_ok=True)
    written = []
    steps = [m["step"] for m in metrics]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    losses = [(m["step"], m["loss"]) for m in metrics if m.get("loss") is not None]
    if losses:
        ax_loss.plot(*zip(*losses), marker=".")
    ax_loss.set(xlabel="step", ylabel="training loss (mean since last eval)", title="loss")
    ax_loss.set_yscale("log")
    for key, label in (("train_acc_eval", "train (eval mode)"), ("valid_acc_eval", "valid (eval mode)"),
                       ("valid_acc_train", "valid (train mode)"), ("test_acc_eval", "test (eval mode)"),
                       ("test_acc_train", "test (train mode)")):
        pts = [(m["step"], 100 * m[key]) for m in metrics if key in m]
        if pts:
            ax_acc.plot(*zip(*pts), marker=".", label=label)
    ax_acc.set(xlabel="step", ylabel="accuracy (%)", title="accuracy")
    ax_acc.legend()
    ax_acc.grid(alpha=0.3)
    fig.suptitle(f"{run.name}: {len(steps)} evaluations")
    fig.tight_layout()
    path = out / "learning_curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    ckpt = run / "best.pt"
    if ckpt.exists():
        import numpy as np
        from lgc.ir.ops import OP_NAMES
        circuit = _lower_checkpoint(ckpt)
        if circuit is not None:
            counts = np.bincount(circuit.op, minlength=16)
            fig, ax = plt.subplots(figsize=(9, 4))
            ax.bar(range(16), counts)
            ax.set_xticks(range(16), OP_NAMES, rotation=60, ha="right")
            ax.set(ylabel="gates", title=f"gate types of {ckpt} ({circuit.num_gates} gates, before optimisation)")
            fig.tight_layout()
            path = out / "gate_histogram.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
    return written


def _lower_checkpoint(path: pathlib.Path):
    from lgc.training import load_torch_file
    blob = load_torch_file(path)   # weights_only: a file holding code is refused, never run
    if isinstance(blob, dict) and blob.get("baseline_mlp"):
        return None  # a baseline MLP has no gates
    from ._common import read_model
    return read_model(str(path))


def run(args: argparse.Namespace) -> int:
    from lgc._optional import require
    require("matplotlib", extra="plot", purpose="lgc plot")
    for path in plot_run(args.run_dir, args.out_dir):
        print(f"wrote {path}")
    return 0
