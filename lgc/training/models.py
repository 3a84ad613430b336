"""What a run trains: its data (with the run's binarisation) and its model config.

``model_config(cfg, data)`` is the frontend config (``lgc.frontend.build_model``) of difflogic's
fully connected network or of a LogicTreeNet-shaped conv network (:func:`conv_model_config`,
Petersen et al. 2024), the dataset's binariser in front so checkpoints carry the binarisation into
``lower``. ``build_baseline_model`` is difflogic's ``main_baseline`` MLP.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..data import Dataset, fixed_threshold, level_thresholds, load_dataset
from .config import TrainConfig

#: [C, H, W] of each image dataset's raw features (feature order C, H, W), for ``--arch conv``.
IMAGE_SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "mnist20x20": (1, 20, 20),
                "cifar-10-3-thresholds": (3, 32, 32), "cifar-10-31-thresholds": (3, 32, 32), "digits": (1, 8, 8)}


def image_binarization(spec: str) -> tuple[np.ndarray, bool | None]:
    """An image dataset's ``--binarize``: ``levels:N`` -> N bit planes x > (i+1)/(N+1), trained on
    the bits (what the model trains on is what the circuit sees); ``threshold:T`` -> one plane
    x > T, trained as the dataset trains (grey values for MNIST). Returns (thresholds [T, 1],
    train on raw values: False or None for the dataset's rule); ValueError otherwise."""
    kind, _, arg = str(spec).partition(":")
    if kind == "levels" and arg.isdigit() and int(arg) >= 1:
        return level_thresholds(int(arg)), False
    if kind == "threshold" and (fixed := fixed_threshold(arg)) is not None:
        return fixed, None
    raise ValueError(f"--binarize {spec!r} for an image dataset: use levels:N (N bit planes) or threshold:T")


def load_training_data(cfg: TrainConfig) -> tuple[Dataset, tuple[np.ndarray, np.ndarray] | None]:
    """(training/test data with the run's binarisation, validation split or None)."""
    options: dict[str, Any] = {}
    image = cfg.dataset in IMAGE_SHAPES and cfg.dataset not in ("digits",)
    if cfg.binarize and not image:
        options["binarize"] = cfg.binarize
    if cfg.dataset.startswith("csv:"):
        options["label"] = cfg.csv_label
        options["seed"] = cfg.seed
    data = load_dataset(cfg.dataset, cfg.data_dir, download=cfg.download, **options)
    if cfg.binarize and image:
        thresholds, raw = image_binarization(cfg.binarize)
        data = dataclasses.replace(data, thresholds=thresholds,
                                   train_on_raw=data.train_on_raw if raw is None else raw)
    return data.split_validation(cfg.valid_set_size, seed=cfg.seed)


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
    min(4**i, 32)`` channels, Flatten, LogicLayers of widths ``fc``, GroupSum. Inputs are flat raw
    features ``[N, C*H*W]`` (no leading Flatten by default: ``lower`` wants the Binarize first).
    ``parametrization`` is every logic layer's (``gates`` | ``inputwise``). ``last_pool=False`` leaves
    out the last block's OR pool: the FC layers read 4x the bits and the pool's OR gates go.
    Raises ValueError when the image gets too small."""
    from ..frontend.conv import conv_output_size
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
    """The frontend model config of the run: ``arch="fc"`` is difflogic's ``randomly_connected``
    network, ``arch="conv"`` :func:`conv_model_config` with ``cfg.conv``; ValueError when the layer
    width does not split into the classes or the dataset cannot feed the architecture."""
    if cfg.num_neurons % data.num_classes:
        raise ValueError(f"-k {cfg.num_neurons} neurons cannot be split into {data.num_classes} equal class groups")
    common = {"connections": cfg.connections, "grad_factor": cfg.grad_factor}
    if cfg.arch == "conv":
        c = cfg.conv
        conv = conv_model_config(image_shape(data), data.binarizer_config(), data.num_classes, channels=c.channels,
                                 depth=c.depth, blocks=c.blocks, fc=[cfg.num_neurons] * cfg.num_layers, tau=cfg.tau,
                                 padding=c.padding, residual_init=c.residual if c.residual > 0 else False,
                                 implementation=cfg.implementation, parametrization=cfg.parametrization,
                                 last_pool=c.last_pool)
        return {**conv, **common}
    if cfg.arch != "fc":
        raise ValueError(f"arch must be fc or conv, got {cfg.arch!r}")
    return {"in_dim": data.num_features, "flatten": True, "binarize": data.binarizer_config(),
            "layers": [cfg.num_neurons] * cfg.num_layers, "implementation": cfg.implementation,
            "k": data.num_classes, "tau": cfg.tau, "parametrization": cfg.parametrization, **common}


def build_logic_model(cfg: TrainConfig, data: Dataset, device: str):
    """The run's logic network (train mode) on ``device``."""
    from ..frontend import build_model
    return build_model(model_config(cfg, data), device=device).train()


def build_baseline_model(cfg: TrainConfig, data: Dataset, device: str):
    """difflogic's ``main_baseline`` MLP: Linear+ReLU layers of width k, then a Linear to classes.
    It starts with the same binariser as the logic network, so it sees the same inputs."""
    import torch
    from ..frontend import Binarize
    bc = data.binarizer_config()
    layers: list[Any] = [torch.nn.Flatten(), Binarize(thresholds=bc["thresholds"], train_passthrough=bc["train_passthrough"],
                                                      num_features=data.num_features)]
    in_dim = data.num_inputs
    for _ in range(max(cfg.num_layers - 1, 0)):
        layers += [torch.nn.Linear(in_dim, cfg.num_neurons), torch.nn.ReLU()]
        in_dim = cfg.num_neurons
    layers.append(torch.nn.Linear(in_dim, data.num_classes))
    return torch.nn.Sequential(*layers).to(device)
