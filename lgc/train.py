"""Training experiments: difflogic's ``main.py`` (and ``main_baseline.py``) as a library call.

``train(TrainConfig(...))`` loads a dataset (:mod:`lgc.data`), builds
``Sequential(LogicLayer(in, k), (l-1) x LogicLayer(k, k), GroupSum(classes, tau))`` (or a ReLU
MLP with ``baseline=True``), trains it with Adam and cross-entropy, and writes a run directory:

- ``config.json``      the run's options;
- ``metrics.jsonl``    one JSON object per evaluation (loss, train-mode and eval-mode accuracy);
- ``last.pt`` / ``best.pt``  model checkpoints (state_dict + constructor config, loadable with
  ``lgc.frontend.load_checkpoint`` and by ``lgc compile``); ``best.pt`` has the highest
  validation accuracy (eval mode); without a validation set it is the last evaluation;
- ``state.pt``         optimizer state, step and best-so-far, for ``resume=True``;
- ``final.json``       test accuracies, gates before/after optimisation, compiled accuracy and
  throughput (with ``compile=True``).

One binarisation rule per dataset (the dataset's encoder): evaluation, lowering and compiled
inference see the same bits, so compiled accuracy must EQUAL eval-mode accuracy; a mismatch
raises :class:`CheckFailed`. Batches come from a seeded ``DistributedSampler`` per epoch, so a
resumed run sees the same batch sequence as an uninterrupted one.

Distributed training: launched by ``torchrun --nproc_per_node=N -m lgc train ...``
(WORLD_SIZE/RANK/LOCAL_RANK set), each process joins a process group (nccl on GPU, gloo on CPU),
wraps the model in DistributedDataParallel and draws its shard of every batch through
DistributedSampler (``batch_size`` is per process); rank 0 evaluates and writes the run dir.

Convolutional models (``arch="conv"``, ``lgc train --arch conv``): a LogicTreeNet-shaped network
(:func:`conv_model_config`, Petersen et al. 2024): the dataset's Binarize (T thresholds -> T*C bit
planes), ``conv_blocks`` x [LogicConv2d 3x3, tree depth ``conv_depth``, padding ``conv_padding`` ->
OrPool2d 2x2] with ``conv_channels * min(4**i, 32)`` channels in block i (``conv_last_pool=False``,
``--conv-no-last-pool``: no pool after the last block), Flatten, ``num_layers`` x
LogicLayer(``num_neurons``), GroupSum. Image datasets only (:data:`IMAGE_SHAPES`: mnist,
mnist20x20, fashion-mnist, cifar-10-*, digits); tabular data raises ValueError. The checkpoints hold
the conv wiring, ``lgc inspect`` / ``lgc compile`` read them, and ``compile=True`` checks compiled ==
eval-mode accuracy as for fc models. Commands::

    # MNIST, runs on this 2-core CPU (the architecture of benchmarks/conv_mnist.py variant b: 8 and
    # 32 channels, 2 x 6000 FC gates; 469 steps per epoch, ~17-170 s per epoch with the host's load;
    # that model reached 96.89% after ~30 epochs, see benchmarks/RESULTS.md, Accuracy):
    lgc train --dataset mnist --arch conv --conv-channels 8 --conv-blocks 2 --conv-padding 0 \
        --conv-residual 2 -k 6000 -l 2 -t 10 -bs 128 -lr 0.02 --connections random \
        -ni 14000 -ef 2000 --compile --threads 2
    # the same, a few steps, as a smoke test (~10 s):  ... -ni 3 -ef 3 --compile
    # CIFAR-10 on a GPU machine, the paper's LogicTreeNet shape (4 blocks with k, 4k, 16k, 32k channels,
    # padding 1, residual logit 5); the CLI's FC part is -l equal layers of -k gates, where the paper
    # tapers 1280k/640k/320k (use lgc.frontend.conv.logic_tree_net for that exact head); take k, tau
    # and epochs from the paper's tables (86.29% with its largest, 61M-gate model):
    lgc train --dataset cifar-10-3-thresholds --arch conv --conv-channels 32 --conv-blocks 4 \
        -k 20480 -l 3 -t 20 -bs 128 -lr 0.02 -ni 200000 -ef 5000 -vss 0.1 --compile --device cuda
    lgc train --dataset cifar-10-31-thresholds --arch conv --conv-channels 256 --conv-blocks 4 \
        -k 163840 -l 3 -t 100 -bs 128 -lr 0.02 -ni 200000 -ef 5000 -vss 0.1 --compile --device cuda

Cost: one step is a forward+backward of the logic layers (see benchmarks/train_step.py); one
evaluation runs the model in eval mode over the validation and test sets.
"""
from __future__ import annotations

import dataclasses
import math
import json
import os
import pathlib
import sys
import time
from typing import Any

import numpy as np

from .data import Dataset, load_dataset


class CheckFailed(RuntimeError):
    """A run finished but a check (compiled accuracy == eval-mode accuracy) failed."""


@dataclasses.dataclass
class TrainConfig:
    """difflogic's experiment options (names follow its ``main.py``)."""

    dataset: str = "mnist20x20"
    num_neurons: int = 8000
    num_layers: int = 6
    tau: float = 10.0
    batch_size: int = 128
    learning_rate: float = 0.01
    lr_schedule: str = "constant"    # constant | cosine (to 0 at the last step; the conv MNIST runs use it)
    num_iterations: int = 100_000
    eval_freq: int = 2000
    connections: str = "unique"
    grad_factor: float = 1.0
    seed: int = 0
    implementation: str = "auto"
    valid_set_size: float = 0.0
    eval_batch_size: int = 4096
    compile: bool = False
    target: str = "cpu"
    opt_level: int = 2
    baseline: bool = False
    out: str | None = None
    data_dir: str | None = None
    download: bool = True
    binarize: str | None = None
    csv_label: str = "-1"
    resume: bool = False
    progress: bool = True
    device: str | None = None
    threads: int | None = None
    arch: str = "fc"             # fc: difflogic's network; conv: LogicTreeNet-shaped (conv_model_config)
    conv_channels: int = 8       # channels of the first conv block (block i has k * min(4**i, 32))
    conv_depth: int = 3          # logic tree depth (2**depth leaves per tree)
    conv_blocks: int = 2         # [LogicConv2d 3x3 + OrPool2d 2x2] blocks
    conv_padding: int = 1        # conv padding (the paper pads by 1; benchmarks/conv_mnist.py uses 0)
    conv_residual: float = 5.0   # residual init: pass-through logit of every tree gate (paper: 5; 0 = random init)
    conv_last_pool: bool = True  # OR pool after the last conv block too (False: the FC layers read 4x the bits)
    relaxation: str = "softmax"  # training relaxation of the gate choice (lgc.frontend.set_relaxation)
    parametrization: str = "gates"   # gate logits: gates (16, difflogic) | inputwise (4, Rüttgers et al.)
    temperature: float = 1.0     # relaxation temperature (softmax(w / T), sigmoid(w / T) for inputwise)
    anneal_to: float | None = None   # anneal T geometrically to this value ...
    anneal_from: float = 0.8     # ... over the run's last (1 - anneal_from) of steps

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------
# model
#: [C, H, W] of each image dataset's raw features (feature order C, H, W), for ``--arch conv``.
IMAGE_SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "mnist20x20": (1, 20, 20),
                "cifar-10-3-thresholds": (3, 32, 32), "cifar-10-31-thresholds": (3, 32, 32), "digits": (1, 8, 8)}


def image_shape(data: Dataset) -> tuple[int, int, int]:
    """The dataset's [C, H, W] (``data.image_shape`` if a loader sets one, else :data:`IMAGE_SHAPES`);
    ValueError for tabular data, which a conv model cannot read."""
    shape = getattr(data, "image_shape", None) or IMAGE_SHAPES.get(data.name)
    if shape is None:
        raise ValueError(f"--arch conv needs an image dataset, and {data.name!r} is not one (image datasets: "
                         f"{', '.join(IMAGE_SHAPES)}); use --arch fc")
    if int(np.prod(shape)) != data.num_features:
        raise ValueError(f"{data.name}: image shape {tuple(shape)} does not match its {data.num_features} features")
    return tuple(int(v) for v in shape)  # type: ignore[return-value]


def conv_model_config(shape: tuple[int, int, int], binarize: dict[str, Any], num_classes: int, *, channels: int,
                      depth: int, blocks: int, fc: list[int], tau: float, residual_init: bool | float = True,
                      padding: int = 1, implementation: str = "auto", flatten: bool = False,
                      parametrization: str = "gates", last_pool: bool = True) -> dict[str, Any]:
    """A LogicTreeNet-shaped model config (``lgc.frontend.build_model``): Binarize (T thresholds ->
    T*C bit planes), ``blocks`` x [LogicConv2d 3x3 tree ``depth`` -> OrPool2d 2x2] with ``channels *
    min(4**i, 32)`` channels, Flatten, LogicLayers of widths ``fc``, GroupSum. Shared by ``lgc train
    --arch conv`` and ``benchmarks/conv_mnist.py``. Inputs are flat raw features ``[N, C*H*W]`` (no
    leading Flatten by default: ``lower`` wants the Binarize first). ``parametrization`` is every logic
    layer's (``gates`` | ``inputwise``). ``last_pool=False`` leaves out the last block's OR pool: the FC
    layers read 4x the bits and the pool's OR gates go (on MNIST this gave better accuracy with fewer
    optimised gates; benchmarks/RESULTS.md). Raises ValueError when the image gets too small."""
    from .frontend.conv import conv_output_size
    c, h, w = shape
    t = np.asarray(binarize["thresholds"], dtype=np.float64)
    planes = c * (1 if t.ndim == 0 else t.shape[0])
    layers: list[Any] = [{"type": "unflatten", "shape": [planes, h, w]}]
    for i in range(blocks):
        out = channels * min(4 ** i, 32)
        pooled = last_pool or i < blocks - 1
        try:
            h, w = conv_output_size((h, w), (3, 3), (1, 1), (padding, padding))
            if pooled:
                h, w = conv_output_size((h, w), (2, 2), (2, 2), (0, 0))
        except ValueError:
            raise ValueError(f"a {shape[1]}x{shape[2]} image is too small for {blocks} conv blocks with padding "
                             f"{padding} (block {i + 1} has nothing left to read)") from None
        layers += [{"type": "conv", "in_channels": planes, "out_channels": out, "kernel_size": [3, 3], "depth": depth,
                    "stride": [1, 1], "padding": [padding, padding], "residual_init": residual_init,
                    "channels_per_tree": 2, "implementation": implementation, "input_size": None,
                    "parametrization": parametrization}]
        if pooled:
            layers.append({"type": "or_pool", "kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0]})
        planes = out
    layers += [{"type": "flatten"}, *[int(f) for f in fc]]
    return {"in_dim": c * shape[1] * shape[2], "flatten": flatten, "binarize": binarize, "layers": layers,
            "implementation": implementation, "k": num_classes, "tau": tau, "parametrization": parametrization}


def model_config(cfg: TrainConfig, data: Dataset) -> dict[str, Any]:
    """The frontend model config (``lgc.frontend.build_model``) of difflogic's
    ``randomly_connected`` architecture with the dataset's binariser in front, so the model and
    its checkpoint carry the binarisation into ``lower`` (it becomes the circuit's input encoder)."""
    if cfg.num_neurons % data.num_classes:
        raise ValueError(f"-k {cfg.num_neurons} neurons cannot be split into {data.num_classes} equal class groups")
    if cfg.arch == "conv":
        if min(cfg.conv_channels, cfg.conv_depth, cfg.conv_blocks) < 1 or cfg.conv_padding < 0:
            raise ValueError("--conv-channels, --conv-depth and --conv-blocks must be >= 1, --conv-padding >= 0")
        conv = conv_model_config(image_shape(data), data.binarizer_config(), data.num_classes,
                                 channels=cfg.conv_channels, depth=cfg.conv_depth, blocks=cfg.conv_blocks,
                                 fc=[cfg.num_neurons] * cfg.num_layers, tau=cfg.tau, padding=cfg.conv_padding,
                                 residual_init=cfg.conv_residual if cfg.conv_residual > 0 else False,
                                 implementation=cfg.implementation, parametrization=cfg.parametrization,
                                 last_pool=cfg.conv_last_pool)
        return {**conv, "connections": cfg.connections, "grad_factor": cfg.grad_factor}
    if cfg.arch != "fc":
        raise ValueError(f"arch must be fc or conv, got {cfg.arch!r}")
    return {"in_dim": data.num_features, "flatten": True, "binarize": data.binarizer_config(),
            "layers": [cfg.num_neurons] * cfg.num_layers, "connections": cfg.connections,
            "grad_factor": cfg.grad_factor, "implementation": cfg.implementation,
            "k": data.num_classes, "tau": cfg.tau, "parametrization": cfg.parametrization}


def annealed_temperature(cfg: TrainConfig, step: int) -> float:
    """The relaxation temperature at ``step``: ``cfg.temperature`` until ``anneal_from`` of the run,
    then geometric to ``anneal_to`` at the last step. Hardening the relaxed gates at the end of
    training lets the network adapt to the circuit it becomes (it narrows the train/eval gap:
    benchmarks/RESULTS.md, conv MNIST fourth round)."""
    if cfg.anneal_to is None:
        return cfg.temperature
    frac = (step / max(1, cfg.num_iterations) - cfg.anneal_from) / max(1e-9, 1.0 - cfg.anneal_from)
    return cfg.temperature * (cfg.anneal_to / cfg.temperature) ** min(1.0, max(0.0, frac))


LR_SCHEDULES = ("constant", "cosine")


def learning_rate_at(cfg: TrainConfig, step: int) -> float:
    """The learning rate of ``step``: ``cfg.learning_rate``, or cosine-decayed from it to 0 over the
    run (a function of the step alone, so a resumed run continues the same schedule)."""
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {cfg.lr_schedule!r}")
    if cfg.lr_schedule == "constant":
        return cfg.learning_rate
    return cfg.learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / max(1, cfg.num_iterations))))


def build_logic_model(cfg: TrainConfig, data: Dataset, device: str):
    from .frontend import build_model
    return build_model(model_config(cfg, data), device=device).train()


def build_baseline_model(cfg: TrainConfig, data: Dataset, device: str):
    """difflogic's ``main_baseline`` MLP: Linear+ReLU layers of width k, then a Linear to classes.
    It starts with the same binariser as the logic network, so it sees the same inputs."""
    import torch
    from .frontend import Binarize
    layers: list[Any] = [torch.nn.Flatten(), Binarize(**_binarize_kwargs(data))]
    in_dim = data.num_inputs
    for _ in range(max(cfg.num_layers - 1, 0)):
        layers += [torch.nn.Linear(in_dim, cfg.num_neurons), torch.nn.ReLU()]
        in_dim = cfg.num_neurons
    layers.append(torch.nn.Linear(in_dim, data.num_classes))
    return torch.nn.Sequential(*layers).to(device)


def _binarize_kwargs(data: Dataset) -> dict[str, Any]:
    bc = data.binarizer_config()
    return {"thresholds": bc["thresholds"], "train_passthrough": bc["train_passthrough"], "num_features": data.num_features}


# ----------------------------------------------------------------------------------------------
# distributed set-up
@dataclasses.dataclass
class Dist:
    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: str | None) -> tuple[Dist, str]:
    import torch
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        import torch.distributed as td
        dist = Dist(int(os.environ["WORLD_SIZE"]), int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)))
        use_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
        if not td.is_initialized():
            td.init_process_group("nccl" if use_cuda else "gloo")
        if use_cuda:
            torch.cuda.set_device(dist.local_rank)
            return dist, f"cuda:{dist.local_rank}"
        return dist, "cpu"
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return Dist(), device


# ----------------------------------------------------------------------------------------------
# evaluation
def predict_model(model, data: Dataset, x: np.ndarray, *, train_mode: bool, device: str, batch: int = 4096) -> np.ndarray:
    """Class predictions of the PyTorch model on raw features ``x``. ``train_mode=False``: the
    discrete network, whose binariser applies the dataset's rule. ``train_mode=True``: difflogic's
    train-mode accuracy, soft gates on the binarised inputs (a model that trains on raw values gets
    the bits fed as its raw values, as difflogic feeds ``x.round()``)."""
    import torch
    was = model.training
    model.train(train_mode)
    feed = data.bits(x).astype(np.float32) if (train_mode and data.train_on_raw) else np.ascontiguousarray(x, np.float32)
    out = []
    with torch.no_grad():
        for i in range(0, len(feed), batch):
            out.append(model(torch.from_numpy(feed[i:i + batch]).to(device)).argmax(-1).cpu().numpy())
    model.train(was)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def model_scores(model, x: np.ndarray, device: str, batch: int = 4096) -> np.ndarray:
    """Eval-mode logits of the model on raw features, as float64 [N, k]."""
    import torch
    was = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], np.float32)).to(device))
                       .double().cpu().numpy())
    model.train(was)
    return np.concatenate(out)


# ----------------------------------------------------------------------------------------------
# run directory helpers
def _write_json(path: pathlib.Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _save_model(model, path: pathlib.Path, cfg: TrainConfig, extra: dict[str, Any]) -> None:
    import torch
    tmp = path.with_suffix(".tmp")
    if cfg.baseline:
        torch.save({"baseline_mlp": True, "state_dict": model.state_dict(), "config": cfg.to_json(), **extra}, tmp)
        os.replace(tmp, path)
    else:
        from .frontend import save_checkpoint
        save_checkpoint(model, path, extra=extra)


def default_run_dir(cfg: TrainConfig) -> pathlib.Path:
    kind = "baseline" if cfg.baseline else ("logic" if cfg.arch == "fc" else f"conv{cfg.conv_channels}x{cfg.conv_blocks}")
    return pathlib.Path("runs") / f"{cfg.dataset.replace(':', '_').replace('/', '_')}-{kind}-k{cfg.num_neurons}-l{cfg.num_layers}-s{cfg.seed}"


# ----------------------------------------------------------------------------------------------
# the loop
def train(cfg: TrainConfig, *, log=print) -> dict[str, Any]:
    """Run one experiment (see the module docstring). Returns the final summary (``final.json``).

    Raises :class:`CheckFailed` when the compiled net's accuracy differs from eval mode."""
    import torch
    if cfg.num_iterations < 0 or cfg.batch_size < 1 or cfg.eval_freq < 1 or cfg.num_layers < 1 or cfg.num_neurons < 1:
        raise ValueError("iterations must be >= 0 and batch size, eval frequency, layers and neurons >= 1")
    if cfg.arch not in ("fc", "conv") or (cfg.baseline and cfg.arch != "fc"):
        raise ValueError(f"arch must be fc or conv (and fc with --baseline), got {cfg.arch!r}")
    learning_rate_at(cfg, 0)   # an unknown lr_schedule fails here, before any work
    if cfg.threads is not None:
        if cfg.threads < 1:
            raise ValueError(f"threads must be >= 1, got {cfg.threads}")
        torch.set_num_threads(cfg.threads)  # the CPU kernel's OpenMP pool follows torch's setting
    dist, device = _init_distributed(cfg.device)
    run_dir = pathlib.Path(cfg.out) if cfg.out else default_run_dir(cfg)
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "state.pt"
    if cfg.resume and not state_path.exists():
        raise FileNotFoundError(f"--resume: no {state_path} to resume from")
    if cfg.resume and (run_dir / "config.json").exists():
        saved = json.loads((run_dir / "config.json").read_text())
        fixed = ("dataset", "num_neurons", "num_layers", "tau", "batch_size", "connections", "seed", "valid_set_size",
                 "baseline", "binarize", "arch", "conv_channels", "conv_depth", "conv_blocks", "conv_padding",
                 "conv_residual", "conv_last_pool", "parametrization")
        differ = [f"{k}: run has {saved[k]!r}, now {getattr(cfg, k)!r}" for k in fixed
                  if k in saved and saved[k] != getattr(cfg, k)]
        if differ:
            raise ValueError(f"--resume {run_dir}: options differ from the run's config.json ({'; '.join(differ)})")
    if not cfg.resume and (run_dir / "metrics.jsonl").exists() and dist.main:
        raise ValueError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")

    options = {"binarize": cfg.binarize} if cfg.binarize else {}
    if cfg.dataset.startswith("csv:"):
        options["label"] = cfg.csv_label
        options["seed"] = cfg.seed
    data = load_dataset(cfg.dataset, cfg.data_dir, download=cfg.download, **options)
    data, valid = data.split_validation(cfg.valid_set_size, seed=cfg.seed)

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = (build_baseline_model if cfg.baseline else build_logic_model)(cfg, data, device)
    from .frontend import set_relaxation
    if not (cfg.temperature > 0 and (cfg.anneal_to is None or cfg.anneal_to > 0) and 0 <= cfg.anneal_from < 1):
        raise ValueError(f"temperature and anneal_to must be > 0 and anneal_from in [0, 1), got {cfg.temperature}, "
                         f"{cfg.anneal_to}, {cfg.anneal_from}")
    set_relaxation(model, cfg.relaxation, cfg.temperature)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    loss_fn = torch.nn.CrossEntropyLoss()

    step, best = 0, {"valid_acc": -1.0, "step": 0}
    resumed_seconds = 0.0
    if cfg.resume:
        state = torch.load(state_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, best = int(state["step"]), state["best"]
        prior = [m for m in read_metrics(run_dir) if m["step"] == step]
        resumed_seconds = float(state.get("train_seconds", prior[-1]["train_seconds"] if prior else 0.0))
        if dist.main:
            log(f"resuming {run_dir} at step {step}")
    elif dist.main:
        _write_json(run_dir / "config.json", cfg.to_json())

    train_model = model
    if dist.world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if device.startswith("cuda") else None)

    from torch.utils.data.distributed import DistributedSampler
    n_train = len(data.y_train)
    per_step = cfg.batch_size * dist.world
    if n_train < per_step:
        raise ValueError(f"{n_train} training samples are fewer than one batch of {per_step}")
    sampler = DistributedSampler(range(n_train), num_replicas=dist.world, rank=dist.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    steps_per_epoch = len(sampler) // cfg.batch_size
    epoch_indices: tuple[int, np.ndarray] | None = None

    def batch_indices(s: int) -> np.ndarray:
        nonlocal epoch_indices
        epoch, pos = divmod(s, steps_per_epoch)
        if epoch_indices is None or epoch_indices[0] != epoch:
            sampler.set_epoch(epoch)
            epoch_indices = (epoch, np.fromiter(iter(sampler), np.int64))
        return epoch_indices[1][pos * cfg.batch_size:(pos + 1) * cfg.batch_size]

    bar = None
    if cfg.progress and dist.main:
        from tqdm import tqdm
        bar = tqdm(total=cfg.num_iterations, initial=step, desc=f"train {cfg.dataset}", unit="step",
                   dynamic_ncols=True, file=sys.stderr, mininterval=0.5 if sys.stderr.isatty() else 60)
    metrics_file = open(run_dir / "metrics.jsonl", "a") if dist.main else None
    losses: list[float] = []
    t_start = time.perf_counter()
    train_seconds = resumed_seconds  # time in training steps, summed over resumed sessions
    try:
        while step < cfg.num_iterations:
            idx = batch_indices(step)
            xb = torch.from_numpy(data.x_train[idx]).to(device)
            yb = torch.from_numpy(data.y_train[idx]).to(device)
            t0 = time.perf_counter()
            if cfg.anneal_to is not None:
                set_relaxation(model, cfg.relaxation, annealed_temperature(cfg, step))
            if cfg.lr_schedule != "constant":
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate_at(cfg, step)
            train_model.train()
            loss = loss_fn(train_model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            train_seconds += time.perf_counter() - t0
            losses.append(float(loss.detach()))
            step += 1
            if bar is not None:
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", refresh=False)
            if step % cfg.eval_freq == 0 or step == cfg.num_iterations:
                if dist.main:
                    rec = _evaluate(model, data, valid, cfg, device, step, losses, train_seconds)
                    losses = []
                    metrics_file.write(json.dumps(rec) + "\n")
                    metrics_file.flush()
                    _save_model(model, run_dir / "last.pt", cfg, {"step": step})
                    # best by validation accuracy (never by test); without a validation set, the latest
                    if valid is None or rec["valid_acc_eval"] > best["valid_acc"]:
                        best = {"valid_acc": float(rec.get("valid_acc_eval", -1.0)), "step": step}
                        _save_model(model, run_dir / "best.pt", cfg, {"step": step})
                    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                                "best": best, "train_seconds": train_seconds}, run_dir / "state.pt.tmp")
                    os.replace(run_dir / "state.pt.tmp", state_path)
                    if bar is not None:
                        bar.write(_format_record(rec))
                    else:
                        log(_format_record(rec))
    finally:
        if bar is not None:
            bar.close()
        if metrics_file is not None:
            metrics_file.close()
    wall = time.perf_counter() - t_start
    if dist.world > 1:
        import torch.distributed as td
        td.destroy_process_group()
    if not dist.main:
        return {}
    return finish(run_dir, cfg, data, valid, model=None, device=device, log=log, wall_seconds=wall)


def _evaluate(model, data: Dataset, valid, cfg: TrainConfig, device: str, step: int, losses: list[float],
              train_seconds: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"step": step, "loss": float(np.mean(losses)) if losses else None,
                           "train_seconds": round(train_seconds, 3)}
    rng = np.random.default_rng(step)
    sub = rng.choice(len(data.y_train), size=min(10_000, len(data.y_train)), replace=False)
    acc = lambda x, y, m: float(np.mean(predict_model(model, data, x, train_mode=m, device=device,
                                                      batch=cfg.eval_batch_size) == y))
    rec["train_acc_eval"] = acc(data.x_train[sub], data.y_train[sub], False)
    if valid is not None:
        rec["valid_acc_train"] = acc(*valid, True)
        rec["valid_acc_eval"] = acc(*valid, False)
    rec["test_acc_train"] = acc(data.x_test, data.y_test, True)
    rec["test_acc_eval"] = acc(data.x_test, data.y_test, False)
    rec["eval_seconds"] = round(time.perf_counter() - t0, 3)
    rec["time"] = time.time()
    return rec


def _format_record(rec: dict[str, Any]) -> str:
    parts = [f"step {rec['step']}"]
    if rec.get("loss") is not None:
        parts.append(f"loss {rec['loss']:.4f}")
    for key in ("train_acc_eval", "valid_acc_train", "valid_acc_eval", "test_acc_train", "test_acc_eval"):
        if key in rec:
            parts.append(f"{key} {100 * rec[key]:.2f}%")
    return "  ".join(parts)


def finish(run_dir: pathlib.Path, cfg: TrainConfig, data: Dataset, valid, *, model=None, device: str = "cpu",
           log=print, wall_seconds: float | None = None) -> dict[str, Any]:
    """Evaluate the best checkpoint on the test set; with ``cfg.compile`` lower, optimise and
    compile it and check the compiled accuracy equals eval mode. Writes ``final.json``."""
    import torch
    best_path = run_dir / "best.pt"
    summary: dict[str, Any] = {"run_dir": str(run_dir), "dataset": cfg.dataset, "checkpoint": str(best_path)}
    if wall_seconds is not None:
        summary["session_wall_seconds"] = round(wall_seconds, 1)  # this process only (a resumed run restarts it)
    metrics = read_metrics(run_dir)
    if metrics:
        summary["train_seconds"] = metrics[-1].get("train_seconds")
        summary["steps"] = metrics[-1]["step"]
    if model is None:
        if not best_path.exists():
            raise FileNotFoundError(f"{best_path} is missing (did the run reach its first evaluation?)")
        if cfg.baseline:
            model = build_baseline_model(cfg, data, device)
            model.load_state_dict(torch.load(best_path, map_location=device, weights_only=False)["state_dict"])
        else:
            from .frontend import load_checkpoint
            model = load_checkpoint(best_path, device=device)
    model.eval()
    best_step = next((m["step"] for m in reversed(metrics) if m["step"] <= _ckpt_step(metrics, cfg, valid)), None)
    summary["best_step"] = best_step
    pred = predict_model(model, data, data.x_test, train_mode=False, device=device, batch=cfg.eval_batch_size)
    summary["test_acc_eval"] = float(np.mean(pred == data.y_test))
    if valid is not None:
        summary["valid_acc_eval"] = float(np.mean(
            predict_model(model, data, valid[0], train_mode=False, device=device, batch=cfg.eval_batch_size) == valid[1]))
    log(f"best checkpoint (step {best_step}): test accuracy {100 * summary['test_acc_eval']:.2f}% (eval mode)")
    if not cfg.baseline:
        summary.update(compile_and_check(model, data, cfg, pred, log=log) if cfg.compile else {"gates": _gates(model)})
    _write_json(run_dir / "final.json", summary)
    if summary.get("compiled_matches") is False:
        raise CheckFailed(f"compiled accuracy {summary['compiled_test_acc']:.4%} != eval-mode accuracy "
                          f"{summary['test_acc_eval']:.4%} on the same binarised inputs")
    return summary


def _gates(model) -> int:
    """Nominal gates: the FC layers' widths, or for conv models the lowered circuit's gate count
    (every position's tree copy; one lowering, cheap next to training)."""
    if any(type(m).__name__ == "LogicConv2d" for m in model.modules()):
        from .api import lower
        return int(lower(model).num_gates)
    return int(sum(getattr(m, "out_dim", 0) for m in model.modules() if type(m).__name__ == "LogicLayer"))


def _ckpt_step(metrics: list[dict[str, Any]], cfg: TrainConfig, valid) -> int:
    if not metrics:
        return 0
    if valid is None:
        return metrics[-1]["step"]
    best = max(metrics, key=lambda m: (m.get("valid_acc_eval", -1), -m["step"]))
    return best["step"]


def compile_and_check(model, data: Dataset, cfg: TrainConfig, eval_pred: np.ndarray, *, log=print) -> dict[str, Any]:
    """Lower the model, optimise at ``cfg.opt_level``, build ``cfg.target`` and compare the
    compiled net with eval mode on the test set (same raw features, same encoder)."""
    from .api import lower, optimize
    from .backends import build
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    circuit = lower(model)
    out["lower_seconds"] = round(time.perf_counter() - t0, 3)
    out["gates_before"] = circuit.num_gates
    t0 = time.perf_counter()
    small = optimize(circuit, level=cfg.opt_level) if cfg.opt_level else circuit
    out["optimize_seconds"] = round(time.perf_counter() - t0, 3)
    out["gates_after"] = small.num_gates
    out["opt_level"] = cfg.opt_level
    t0 = time.perf_counter()
    net = build(small, cfg.target)
    out["compile_seconds"] = round(time.perf_counter() - t0, 3)
    out["target"] = getattr(net, "target", cfg.target)
    x_test = data.x_test if small.input_encoder is not None else data.bits(data.x_test)
    scores = net(x_test)
    compiled_pred = np.argmax(scores, axis=1)
    out["compiled_test_acc"] = float(np.mean(compiled_pred == data.y_test))
    out["compiled_matches"] = bool(out["compiled_test_acc"] == float(np.mean(eval_pred == data.y_test)))
    out["compiled_predictions_equal"] = bool(np.array_equal(compiled_pred, eval_pred))
    out["compiled_samples_per_s"] = _throughput(net, data.bits(data.x_test))
    log(f"lowered {out['gates_before']} gates -> {out['gates_after']} after O{cfg.opt_level}; "
        f"compiled for {out['target']} in {out['compile_seconds']:.2f} s: test accuracy "
        f"{100 * out['compiled_test_acc']:.2f}% ({'equals' if out['compiled_matches'] else 'DIFFERS FROM'} eval mode), "
        f"{out['compiled_samples_per_s']:,.0f} samples/s")
    return out


def _throughput(net, bits: np.ndarray) -> float:
    """Samples per second of ``net`` on bool input bits (packing and readout included)."""
    from .cli._common import samples_per_second
    return samples_per_second(net, bits)


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The run's ``metrics.jsonl`` records (an empty list when there are none)."""
    path = pathlib.Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    # a resumed run may repeat steps after the last saved state: keep the latest record per step
    by_step = {r["step"]: r for r in recs}
    return [by_step[s] for s in sorted(by_step)]


def load_config(run_dir: str | os.PathLike) -> TrainConfig:
    path = pathlib.Path(run_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: not an lgc run directory")
    raw = json.loads(path.read_text())
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in raw.items() if k in known})
