"""The training run's options: one dataclass, its defaults written once (the CLI is generated).

:class:`TrainConfig` follows difflogic's ``main.py`` names; the conv block settings are nested in
:class:`ConvConfig` (``--conv-*``) and knowledge distillation in :class:`DistillConfig`
(``--distill-*``). A field's metadata gives its flags and help (:func:`lgc.training.options.option`)
and whether it may change when a run is resumed (``mutable``, see :data:`MUTABLE_ON_RESUME`).
Pure Python; no torch.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..data import DATASETS
from .options import flat_values, leaf_fields, option

LR_SCHEDULES = ("constant", "cosine")
RELAXATIONS = ("softmax", "gumbel-st", "hard-st")
PARAMETRIZATIONS = ("gates", "inputwise")


@dataclasses.dataclass
class ConvConfig:
    """LogicTreeNet-shaped conv blocks (Petersen et al. 2024), used with ``arch="conv"``."""

    channels: int = option(8, "--conv-channels", group="architecture",
                           help="conv: channels of block 1; block i has k*4^i, at most 32k")
    depth: int = option(3, "--conv-depth", group="architecture", help="conv: logic tree depth, 1..4")
    blocks: int = option(2, "--conv-blocks", group="architecture", help="conv: [3x3 tree conv + 2x2 OR pool] blocks")
    padding: int = option(1, "--conv-padding", group="architecture",
                          help="conv: padding of each 3x3 conv (the paper pads by 1)")
    residual: float = option(5.0, "--conv-residual", group="architecture", metavar="LOGIT",
                             help="conv: residual init, the pass-through gate's logit (paper: 5; 0: random init)")
    last_pool: bool = option(True, "--conv-no-last-pool", negate=True, group="architecture",
                             help="conv: no OR pool after the last block (the FC layers read 4x the bits and the "
                                  "pool's OR gates go; on MNIST: higher accuracy at fewer optimised gates)")


@dataclasses.dataclass
class DistillConfig:
    """Knowledge distillation (Hinton et al. 2015): loss = (1 - weight) CE + weight T^2 KL(teacher_T || student_T),
    the teacher being the mean train-mode logits of trained checkpoints on the training images."""

    teachers: list[str] = option(dataclasses.MISSING, "--distill-from", default_factory=list, nargs="+", metavar="CKPT",
                                 help="distil from these trained checkpoints (their mean relaxed logits)")
    weight: float = option(0.5, "--distill-weight", help="distillation: weight of the KL term, in [0, 1]")
    temperature: float = option(2.0, "--distill-temperature", help="distillation: softmax temperature T")


@dataclasses.dataclass
class TrainConfig:
    """One training run. Names follow difflogic's ``main.py``; see ``lgc train --help``."""

    dataset: str = option("mnist20x20", metavar="NAME",
                          help="one of: " + "; ".join(f"{k} ({v})" for k, v in DATASETS.items()))
    num_neurons: int = option(8000, "-k", "--num-neurons", help="gates per layer")
    num_layers: int = option(6, "-l", "--num-layers", help="logic layers")
    tau: float = option(10.0, "-t", "--tau", help="group-sum temperature")
    batch_size: int = option(128, "-bs", "--batch-size", help="batch size")
    learning_rate: float = option(0.01, "-lr", "--learning-rate", help="Adam learning rate")
    lr_schedule: str = option("constant", choices=LR_SCHEDULES,
                              help="learning rate: constant (difflogic) or cosine decay to 0 over the run")
    num_iterations: int = option(100_000, "-ni", "--num-iterations", mutable=True, help="training steps")
    eval_freq: int = option(2000, "-ef", "--eval-freq", mutable=True, help="evaluate and checkpoint every N steps")
    connections: str = option("unique", choices=("unique", "random"), help="wiring of the FC layers")
    grad_factor: float = option(1.0, help="gradient scale per layer")
    seed: int = option(0, help="random seed (wiring, initial logits, batch order, validation split)")
    implementation: str = option("auto", mutable=True, help="training kernels: auto, python, cpu or cuda")
    valid_set_size: float = option(0.0, "-vss", "--valid-set-size",
                                   help="fraction of the training set held out for validation / best-checkpoint "
                                        "selection")
    eval_batch_size: int = option(4096, "-ebs", "--eval-batch-size", mutable=True, help="evaluation batch size")
    arch: str = option("fc", choices=("fc", "conv"), group="architecture",
                       help="fc: difflogic's fully connected network; conv: LogicTreeNet-shaped conv blocks, then "
                            "-l layers of -k gates (image datasets only)")
    conv: ConvConfig = dataclasses.field(default_factory=ConvConfig)
    relaxation: str = option("softmax", choices=RELAXATIONS,
                             help="training relaxation of the gate choice: softmax mixture (difflogic), or one hard "
                                  "gate per neuron forward, Gumbel-sampled or argmax, with the softmax gradient")
    parametrization: str = option("gates", choices=PARAMETRIZATIONS,
                                  help="gate logits: gates (16 per gate, softmax; difflogic) or inputwise (4 per gate, "
                                       "one sigmoid per truth-table row; Ruttgers et al. 2025)")
    temperature: float = option(1.0, help="relaxation temperature T (softmax(w / T), sigmoid(w / T))")
    anneal_to: float | None = option(None, type=float, metavar="T1",
                                     help="anneal T geometrically to T1 over the last part of the run (e.g. 0.05: the "
                                          "relaxed gates harden, so the network adapts to the circuit it becomes)")
    anneal_from: float = option(0.8, metavar="FRACTION", help="fraction of the steps after which annealing starts")
    gate_budget: int | None = option(None, type=int, metavar="GATES",
                                     help="select the best checkpoint only among evaluations whose network has at most "
                                          "GATES gates after lowering and O2 (a structural rule; reads no labels)")
    distill: DistillConfig = dataclasses.field(default_factory=DistillConfig)
    init_from: str | None = option(None, metavar="CKPT",
                                   help="start from this checkpoint's weights (same architecture; a fine-tune)")
    baseline: bool = option(False, help="train difflogic's baseline MLP instead (Linear+ReLU)")
    out: str | None = option(None, metavar="RUN_DIR", group="run",
                             help="run directory (default runs/<dataset>-<kind>-k<k>-l<l>-s<seed>)")
    resume: bool = option(False, group="run", help="continue the run in --out from its last checkpoint")
    compile: bool = option(False, group="run", mutable=True,
                           help="compile the best checkpoint and check it equals eval mode")
    target: str = option("cpu", group="run", mutable=True, help="target for --compile")
    opt_level: int = option(2, "-O", "--opt-level", choices=(0, 1, 2, 3), group="run", mutable=True,
                            help="optimisation level for --compile")
    plot: bool = option(False, group="run", mutable=True,
                        help="draw learning curves and the gate histogram at the end (needs matplotlib)")
    device: str | None = option(None, group="run", mutable=True,
                                help="torch device (default: cuda when available, else cpu)")
    threads: int | None = option(None, type=int, group="run", mutable=True,
                                 help="CPU threads for training (default: torch's; 1 is best on a busy machine)")
    progress: bool = option(True, "--no-progress", negate=True, group="run", mutable=True, help="no progress bar")
    data_dir: str | None = option(None, group="data", mutable=True,
                                  help="dataset folder (default $LGC_DATA_DIR, else ~/.cache/lgc/data)")
    download: bool = option(True, "--no-download", negate=True, group="data", mutable=True,
                            help="never download missing files")
    binarize: str | None = option(None, group="data",
                                  help="the binarisation: quantile:N, uniform:N or threshold:T (tabular sets); images "
                                       "also levels:N (N bit planes x > (i+1)/(N+1), trained on bits) or threshold:T")
    csv_label: str = option("-1", group="data", help="csv: the label column's name or index (default last)")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "TrainConfig":
        """The config of a ``config.json`` (nested, or an older run's flat ``conv_*`` keys); unknown keys
        are ignored."""
        raw = dict(raw)
        nested = {"conv": ConvConfig, "distill": DistillConfig}
        parts: dict[str, dict[str, Any]] = {k: dict(raw.pop(k, None) or {}) for k in nested}
        for key in list(raw):
            head, _, rest = key.partition("_")
            if head in nested and rest in {f.name for f in dataclasses.fields(nested[head])}:
                parts[head][rest] = raw.pop(key)
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in raw.items() if k in known and k not in nested}
        for key, sub in nested.items():
            names = {f.name for f in dataclasses.fields(sub)}
            kwargs[key] = sub(**{k: v for k, v in parts[key].items() if k in names})
        return cls(**kwargs)

    def flat(self) -> dict[str, Any]:
        """``{flat option name: value}`` (``conv_last_pool`` for ``conv.last_pool``)."""
        return flat_values(self)


#: options that may change when a run is resumed (they do not change what is trained up to the last
#: checkpoint); every other difference is refused by name. ``out`` and ``resume`` are not compared.
MUTABLE_ON_RESUME = frozenset(name for name, f, _ in leaf_fields(TrainConfig) if f.metadata.get("mutable"))


def check_values(cfg: TrainConfig) -> None:
    """Refuse option values no run can use (ValueError naming the option); pure, no I/O."""
    if cfg.num_iterations < 0 or cfg.batch_size < 1 or cfg.eval_freq < 1 or cfg.num_layers < 1 or cfg.num_neurons < 1:
        raise ValueError("iterations must be >= 0 and batch size, eval frequency, layers and neurons >= 1")
    if cfg.arch not in ("fc", "conv") or (cfg.baseline and cfg.arch != "fc"):
        raise ValueError(f"arch must be fc or conv (and fc with --baseline), got {cfg.arch!r}")
    for name, value, allowed in (("lr_schedule", cfg.lr_schedule, LR_SCHEDULES),
                                 ("relaxation", cfg.relaxation, RELAXATIONS),
                                 ("parametrization", cfg.parametrization, PARAMETRIZATIONS),
                                 ("connections", cfg.connections, ("unique", "random"))):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    if not (cfg.temperature > 0 and (cfg.anneal_to is None or cfg.anneal_to > 0) and 0 <= cfg.anneal_from < 1):
        raise ValueError(f"temperature and anneal_to must be > 0 and anneal_from in [0, 1), got {cfg.temperature}, "
                         f"{cfg.anneal_to}, {cfg.anneal_from}")
    if cfg.threads is not None and cfg.threads < 1:
        raise ValueError(f"threads must be >= 1, got {cfg.threads}")
    c = cfg.conv
    if cfg.arch == "conv" and (min(c.channels, c.depth, c.blocks) < 1 or c.padding < 0):
        raise ValueError("--conv-channels, --conv-depth and --conv-blocks must be >= 1, --conv-padding >= 0")
    if cfg.gate_budget is not None and (cfg.gate_budget < 1 or cfg.baseline):
        raise ValueError(f"--gate-budget must be >= 1 and needs a logic network, got {cfg.gate_budget}")
    d = cfg.distill
    if d.teachers and not (0 <= d.weight <= 1 and d.temperature > 0):
        raise ValueError(f"--distill-weight must lie in [0, 1] and --distill-temperature be > 0, got {d.weight}, "
                         f"{d.temperature}")
    if cfg.opt_level not in (0, 1, 2, 3):
        raise ValueError(f"opt_level must be 0..3, got {cfg.opt_level}")


def resume_changes(saved: TrainConfig, now: TrainConfig) -> tuple[dict[str, tuple[Any, Any]], list[str]]:
    """(allowed changes ``{name: (run's value, new value)}``, refused differences as messages)."""
    old, new = saved.flat(), now.flat()
    allowed, refused = {}, []
    for name in old:
        if name in ("out", "resume") or old[name] == new[name]:
            continue
        if name in MUTABLE_ON_RESUME:
            allowed[name] = (old[name], new[name])
        else:
            refused.append(f"{name}: run has {old[name]!r}, now {new[name]!r}")
    return allowed, refused
