"""Convolutional logic networks on MNIST (LogicTreeNet-style): the variants of the five rounds in
LOG.md as configs of the library trainer (``lgc.training``), each one ``lgc train`` command.

    python experiments/conv_mnist/conv_mnist.py                      # the recipe, seed 0, 80 epochs
    python experiments/conv_mnist/conv_mnist.py --variant i --seed 2 --epochs 80
    python experiments/conv_mnist/conv_mnist.py --list               # the variants as lgc train options
    python experiments/conv_mnist/conv_mnist.py --variant recipe --epochs 1 -- --distill-from a.pt b.pt

Arguments after ``--`` are ``lgc train`` options applied on top of the variant. The recipe (fifth
round): 20x20 crop, three bit planes, 12/48 channels, depth-3 trees, residual logit 2, no OR pool after
the last block, input-wise logits, FC 2 x 8000 (unique wiring), tau 10, Adam with cosine decay from
0.02 over 80 epochs of 468 steps, batch 128; best checkpoint = the latest within the FC baseline's
26,854 O2 gates. 97.24-97.96% over 8 seeds (mean 97.60%), ~21 min per run on one quiet core.
Run directories go to experiments/conv_mnist/runs/<variant>-s<seed>-e<epochs>; the summary to
experiments/conv_mnist/out/. Not carried over from the old script: randomly shifted crops (variants
j, k), Bernoulli-sampled layer outputs and per-layer relaxation settings (see LOG.md).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys

from lgc.training import ConvConfig, TrainConfig, Trainer
from lgc.training.options import add_arguments, from_arguments, flat_values

from common import HERE, OUT

STEPS_PER_EPOCH = 60_000 // 128
BASELINE = {"name": "difflogic FC 6 x 8000 trained here (mnist20x20)", "accuracy": 0.9758, "gates_O2": 26_854}

_GREY = dict(dataset="mnist", conv=ConvConfig(channels=8, residual=2.0, padding=0))
_PLANES = dict(dataset="mnist", binarize="levels:3", conv=ConvConfig(channels=8, residual=2.0, padding=0))
_CROP = dict(dataset="mnist20x20", binarize="levels:3", conv=ConvConfig(channels=12, residual=2.0, padding=0))
#: variant -> TrainConfig fields (on top of COMMON); rounds and results in LOG.md
VARIANTS: dict[str, dict] = {
    "a": dict(_GREY, conv=ConvConfig(channels=8, residual=5.0, padding=0), num_neurons=2000, tau=5.0),
    "b": dict(_GREY, num_neurons=6000),
    "c": dict(_PLANES, conv=ConvConfig(channels=12, residual=2.0, padding=0), num_neurons=6000),
    "d": dict(_PLANES, num_neurons=6000),
    "e": dict(_PLANES, num_neurons=4000),
    "f": dict(_PLANES),
    "g": dict(_PLANES, conv=ConvConfig(channels=8, residual=4.0, padding=0)),
    "h": dict(_CROP, conv=ConvConfig(channels=16, residual=2.0, padding=0), num_neurons=6000),
    "i": dict(_CROP),
    "l": dict(_CROP, num_neurons=10000),
    "m": dict(_CROP, num_layers=3),
    "n": dict(_CROP, num_layers=4),
    "q": dict(_CROP, conv=ConvConfig(channels=16, residual=2.0, padding=0)),
    "o": dict(_PLANES, conv=ConvConfig(channels=4, residual=2.0, padding=1, blocks=3)),
    "p": dict(_PLANES, conv=ConvConfig(channels=8, residual=2.0, padding=1, blocks=3)),
    "recipe": dict(_CROP, connections="unique", parametrization="inputwise",
                   conv=ConvConfig(channels=12, residual=2.0, padding=0, last_pool=False)),
}
COMMON = dict(arch="conv", num_neurons=8000, num_layers=2, tau=10.0, batch_size=128, learning_rate=0.02,
              connections="random", lr_schedule="cosine", gate_budget=BASELINE["gates_O2"], compile=True,
              threads=1, progress=False)


def variant_config(name: str, seed: int, epochs: int, extra: list[str]) -> TrainConfig:
    """The variant's config for ``epochs`` epochs (evaluated every 5), with ``lgc train`` options on top."""
    steps = epochs * STEPS_PER_EPOCH
    cfg = TrainConfig(**{**COMMON, **VARIANTS[name], "seed": seed, "num_iterations": steps,
                         "eval_freq": min(steps, 5 * STEPS_PER_EPOCH) or 1,
                         "out": str(HERE / "runs" / f"{name}-s{seed}-e{epochs}")})
    if extra:
        parser = argparse.ArgumentParser(prog="lgc train options")
        add_arguments(parser, TrainConfig)
        parser.set_defaults(**flat_values(cfg))
        cfg = from_arguments(TrainConfig, parser.parse_args(extra))
    return cfg


def as_command(cfg: TrainConfig) -> str:
    """The ``lgc train`` command line of ``cfg`` (options that differ from the defaults)."""
    default, flags = TrainConfig().flat(), {}
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainConfig)
    for action in parser._actions:
        flags[action.dest] = action.option_strings[-1] if action.option_strings else None
    parts = ["lgc train"]
    for name, value in cfg.flat().items():
        if value == default[name] or flags.get(name) is None:
            continue
        values = value if isinstance(value, list) else [value]
        parts.append(flags[name] if isinstance(value, bool) else f"{flags[name]} {shlex.join(map(str, values))}")
    return " ".join(parts)


def main(argv: list[str]) -> int:
    split = argv.index("--") if "--" in argv else len(argv)
    own, extra = argv[:split], argv[split + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", default="recipe", choices=sorted(VARIANTS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--list", action="store_true", help="print every variant as an lgc train command")
    args = ap.parse_args(own)
    if args.list:
        for name in VARIANTS:
            print(f"{name}: {as_command(variant_config(name, args.seed, args.epochs, extra))}")
        return 0
    cfg = variant_config(args.variant, args.seed, args.epochs, extra)
    print(as_command(cfg), flush=True)
    summary = Trainer(cfg).fit()
    OUT.mkdir(exist_ok=True)
    result = {"variant": args.variant, "config": dataclasses.asdict(cfg), "command": as_command(cfg),
              "summary": summary, "baseline": BASELINE}
    (OUT / f"conv_mnist_{args.variant}-s{args.seed}-e{args.epochs}.json").write_text(json.dumps(result, indent=1))
    print(f"{'figure':30s} {'conv (this run)':>16s} {'FC baseline':>12s}")
    print(f"{'test accuracy (eval mode)':30s} {summary['test_acc_eval']:16.4f} {BASELINE['accuracy']:12.4f}")
    print(f"{'gates after O2':30s} {summary.get('gates_after', 0):16d} {BASELINE['gates_O2']:12d}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
