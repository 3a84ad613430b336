"""Model configs and checkpoints: rebuild a model without the script that trained it.

A model config is plain data (JSON-able) describing ``[Flatten] [Binarize] LogicLayer* [GroupSum]``::

    {
      "in_dim": 784,                 # raw features per sample after flattening (required)
      "flatten": true,               # start with nn.Flatten (default true)
      "binarize": null | {"thresholds": 0.5 | [t1, t2, ...] | [[per-feature] * T],
                          "train_passthrough": false},   # optional; first layer then reads in_dim * T bits
      "layers": [8000, 8000, {"out_dim": 8000, "connections": "unique", "grad_factor": 1.0,
                              "residual_init": false, "parametrization": "gates"}],   # ints or dicts
      "connections": "random", "grad_factor": 1.0, "residual_init": false,    # defaults for the layers
      "parametrization": "gates",    # gates (16 logits) | inputwise (4); default for logic and conv layers
      "implementation": "auto",      # auto | python | cpu | cuda
      "k": 10, "tau": 10.0,          # GroupSum head; k null (or absent) -> no head
      "dtype": "float32"             # optional
    }

Convolutional models (LogicTreeNet-shaped, :mod:`lgc.frontend.conv`) use typed entries in
``layers``; an entry without ``"type"`` (or an int) is a LogicLayer as above::

      "layers": [{"type": "unflatten", "shape": [C, H, W]},        # nn.Unflatten(1, shape)
                 {"type": "conv", "in_channels": 1, "out_channels": 8, "kernel_size": [3, 3],
                  "depth": 3, "stride": [1, 1], "padding": [1, 1], "residual_init": true,
                  "channels_per_tree": 2, "implementation": "auto", "input_size": null,
                  "parametrization": "gates"},
                 {"type": "or_pool", "kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0]},
                 {"type": "flatten"},                                # nn.Flatten() back to [N, C*H*W]
                 2000, 2000]                                         # then LogicLayers

The conv entries are ``LogicConv2d.config()`` / ``OrPool2d.config()`` plus ``type``; their wiring
(``leaf_channel``, ``leaf_dy``, ``leaf_dx``) and logits come from the state_dict. ``in_dim`` is
still the raw feature count; an unflatten shape must hold exactly the bits that reach it.

``model_config(model)`` writes the explicit form; ``build_model(config)`` builds a fresh model
(random logits and wiring unless a state_dict is loaded afterwards). A checkpoint (``.pt``) is
``{"format": "lgc-checkpoint", "version": 1, "config", "state_dict", "extra"}`` saved with
``torch.save`` and read with ``weights_only=True``, so ``extra`` must be plain data (numbers,
strings, lists, dicts, tensors).
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .binarize import Binarize
from .conv import LogicConv2d, OrPool2d
from .layers import GroupSum, LogicLayer
from .lower import _is_plain_flatten, _modules

CHECKPOINT_FORMAT = "lgc-checkpoint"
CHECKPOINT_VERSION = 1
_LAYER_KEYS = ("out_dim", "connections", "grad_factor", "residual_init", "parametrization")


def model_config(model: nn.Module) -> dict[str, Any]:
    """The config that ``build_model`` turns back into a model of the same shape as ``model``."""
    mods = _modules(model)
    cfg: dict[str, Any] = {"in_dim": None, "flatten": bool(mods) and _is_plain_flatten(mods[0]),
                           "binarize": None, "layers": [], "k": None, "tau": 1.0, "implementation": "auto"}
    thresholds = 1
    width: int | None = None                  # flat bits reaching the next module, once known
    img: tuple[int, int, int] | None = None   # (C, H, W) while activations are images
    for pos, m in enumerate(mods):
        if cfg["k"] is not None:
            raise ValueError(f"model_config: module {pos} ({type(m).__name__}) follows the GroupSum")
        if isinstance(m, nn.Identity) or (_is_plain_flatten(m) and img is None):
            continue
        if _is_plain_flatten(m):
            cfg["layers"].append({"type": "flatten"})
            width, img = int(np.prod(img)), None
        elif isinstance(m, Binarize) and cfg["binarize"] is None and not cfg["layers"]:
            bc = m.config()
            cfg["binarize"] = {"thresholds": bc["thresholds"], "train_passthrough": bc["train_passthrough"]}
            thresholds = m.num_thresholds
            if bc["num_features"] is not None:
                cfg["in_dim"] = bc["num_features"]
                width = cfg["in_dim"] * thresholds
        elif isinstance(m, nn.Unflatten) and img is None:
            shape = tuple(int(v) for v in m.unflattened_size)
            if m.dim != 1 or len(shape) != 3:
                raise ValueError(f"model_config: module {pos}: only nn.Unflatten(1, (C, H, W)) is supported, got {m}")
            bits = int(np.prod(shape))
            if width is None:
                if bits % thresholds:
                    raise ValueError(f"model_config: Unflatten shape {shape} is not a multiple of the Binarize's "
                                     f"{thresholds} thresholds")
                cfg["in_dim"], width = bits // thresholds, bits
            elif bits != width:
                raise ValueError(f"model_config: Unflatten to {shape} ({bits} values) after {width} values")
            cfg["layers"].append({"type": "unflatten", "shape": list(shape)})
            img = shape
        elif isinstance(m, LogicConv2d):
            if img is None and width is None and not cfg["layers"] and m.input_size is not None:
                img = (m.in_channels, *m.input_size)        # the model takes [N, C, H, W] directly
                cfg["in_dim"] = width = int(np.prod(img))
            if img is None or img[0] != m.in_channels:
                raise ValueError(f"model_config: LogicConv2d (module {pos}) with {m.in_channels} input channels "
                                 f"needs a [C, H, W] input with C = {m.in_channels}, got {img or 'flat values'} "
                                 f"(put an nn.Unflatten(1, (C, H, W)) before it)")
            cfg.setdefault("dtype", str(m.weights.dtype).replace("torch.", ""))
            cfg["layers"].append({"type": "conv", **m.config()})
            img = (m.out_channels, *m.output_size(img[1:]))
        elif isinstance(m, OrPool2d):
            if img is None:
                raise ValueError(f"model_config: OrPool2d (module {pos}) needs a [C, H, W] input")
            cfg["layers"].append({"type": "or_pool", **m.config()})
            img = (img[0], *m.output_size(img[1:]))
        elif isinstance(m, LogicLayer) and img is None:
            if width is None:
                if m.in_dim % thresholds:
                    raise ValueError(f"model_config: LogicLayer in_dim {m.in_dim} is not a multiple of the "
                                     f"Binarize's {thresholds} thresholds")
                cfg["in_dim"] = m.in_dim // thresholds
            elif width != m.in_dim:
                raise ValueError(f"model_config: module {pos} (LogicLayer) has in_dim {m.in_dim}, but {width} "
                                 f"values reach it")
            if not any(isinstance(x, Mapping) and "out_dim" in x for x in cfg["layers"]):
                cfg["implementation"] = m.implementation
                cfg.setdefault("dtype", str(m.weights.dtype).replace("torch.", ""))
            cfg["layers"].append({"out_dim": m.out_dim, "connections": m.connections, "grad_factor": m.grad_factor,
                                  "residual_init": m.residual_init, "parametrization": m.parametrization})
            width = m.out_dim
        elif isinstance(m, GroupSum) and img is None:
            cfg["k"], cfg["tau"] = m.k, m.tau
        else:
            raise ValueError(f"model_config: unsupported module {pos}: {type(m).__name__}"
                             f"{' on [C, H, W] activations (Flatten first)' if img is not None else ''}; a "
                             f"checkpointable model is [Flatten] [Binarize] [Unflatten LogicConv2d/OrPool2d* "
                             f"Flatten] LogicLayer* [GroupSum]")
    if cfg["in_dim"] is None:
        raise ValueError("model_config: the model has no LogicLayer and no Binarize with a known feature count")
    return cfg


_CONV_KEYS = {"in_channels", "out_channels", "kernel_size", "depth", "stride", "padding", "residual_init",
              "channels_per_tree", "implementation", "input_size", "parametrization"}
_POOL_KEYS = {"kernel_size", "stride", "padding"}


def _entry(spec: Mapping[str, Any], allowed: set[str], i: int) -> dict[str, Any]:
    kw = {k: v for k, v in spec.items() if k != "type"}
    extra = set(kw) - allowed
    if extra:
        raise ValueError(f"build_model: layer {i} ({spec.get('type')}) has unknown keys {sorted(extra)}; "
                         f"known: {sorted(allowed)}")
    return kw


def build_model(config: Mapping[str, Any], device: Any = "cpu", implementation: str | None = None) -> nn.Sequential:
    """A fresh ``nn.Sequential`` from a model config (schema in the module docstring)."""
    known = {"in_dim", "flatten", "binarize", "layers", "connections", "grad_factor", "residual_init",
             "parametrization", "implementation", "k", "tau", "dtype"}
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"build_model: unknown config keys {sorted(unknown)}; known: {sorted(known)}")
    if "in_dim" not in config or int(config["in_dim"]) < 1:
        raise ValueError("build_model: config needs in_dim >= 1 (raw features per sample)")
    impl = implementation or config.get("implementation", "auto")
    mods: list[nn.Module] = []
    if config.get("flatten", True):
        mods.append(nn.Flatten())
    width = int(config["in_dim"])
    img: tuple[int, ...] | None = None
    bz = config.get("binarize")
    if bz is not None:
        if not isinstance(bz, Mapping):
            bz = {"thresholds": bz}
        extra = set(bz) - {"thresholds", "train_passthrough", "num_features"}
        if extra:
            raise ValueError(f"build_model: unknown binarize keys {sorted(extra)}")
        b = Binarize(bz.get("thresholds", 0.5), train_passthrough=bool(bz.get("train_passthrough", False)),
                     num_features=width, device=device)
        mods.append(b)
        width *= b.num_thresholds
    for i, spec in enumerate(config.get("layers", [])):
        kind = spec.get("type", "logic") if isinstance(spec, Mapping) else "logic"
        if kind == "unflatten":
            shape = tuple(int(v) for v in _entry(spec, {"shape"}, i).get("shape", ()))
            if img is not None or len(shape) != 3 or min(shape) < 1 or int(np.prod(shape)) != width:
                raise ValueError(f"build_model: layer {i}: unflatten needs a positive [C, H, W] shape holding the "
                                 f"{width} flat values that reach it, got {spec.get('shape')}")
            mods.append(nn.Unflatten(1, shape))
            img = shape
        elif kind == "conv":
            kw = _entry(spec, _CONV_KEYS, i)
            if implementation is not None:
                kw["implementation"] = implementation
            kw.setdefault("parametrization", config.get("parametrization", "gates"))
            if img is None and i == 0 and not config.get("flatten", True) and bz is None and kw.get("input_size"):
                img = (int(kw.get("in_channels", 0)), *(int(v) for v in kw["input_size"]))
                if int(np.prod(img)) != width:
                    raise ValueError(f"build_model: layer 0: conv input {img} does not hold in_dim={width} values")
            if img is None or int(kw.get("in_channels", -1)) != img[0]:
                raise ValueError(f"build_model: layer {i}: conv with in_channels {kw.get('in_channels')} needs a "
                                 f"[C, H, W] input with that C (an unflatten entry first), got {img or 'flat values'}")
            conv = LogicConv2d(**kw, device=device)
            mods.append(conv)
            img = (conv.out_channels, *conv.output_size(img[1:]))
        elif kind == "or_pool":
            pool = OrPool2d(**_entry(spec, _POOL_KEYS, i))
            if img is None:
                raise ValueError(f"build_model: layer {i}: or_pool needs a [C, H, W] input")
            mods.append(pool)
            img = (img[0], *pool.output_size(img[1:]))
        elif kind == "flatten":
            _entry(spec, set(), i)
            if img is None:
                raise ValueError(f"build_model: layer {i}: flatten needs a [C, H, W] input")
            mods.append(nn.Flatten())
            width, img = int(np.prod(img)), None
        elif kind == "logic":
            if isinstance(spec, Mapping):
                spec = {k: v for k, v in spec.items() if k != "type"}
                extra = set(spec) - set(_LAYER_KEYS)
                if extra or "out_dim" not in spec:
                    raise ValueError(f"build_model: layer {i} needs out_dim and only {_LAYER_KEYS}, got {dict(spec)}")
            else:
                spec = {"out_dim": spec}
            if img is not None:
                raise ValueError(f"build_model: layer {i}: a LogicLayer after [C, H, W] activations needs a "
                                 f"flatten entry first")
            layer = LogicLayer(width, int(spec["out_dim"]), device=device,
                               grad_factor=float(spec.get("grad_factor", config.get("grad_factor", 1.0))),
                               implementation=impl,
                               connections=spec.get("connections", config.get("connections", "random")),
                               residual_init=spec.get("residual_init", config.get("residual_init", False)),
                               parametrization=spec.get("parametrization", config.get("parametrization", "gates")))
            mods.append(layer)
            width = layer.out_dim
        else:
            raise ValueError(f"build_model: layer {i} has unknown type {kind!r}; known: logic (default), "
                             f"unflatten, conv, or_pool, flatten")
    if config.get("k") is not None:
        k = int(config["k"])
        if img is not None:
            raise ValueError("build_model: the GroupSum head needs flat values (end the conv part with a flatten entry)")
        if width % k:
            raise ValueError(f"build_model: the last layer's {width} outputs cannot be split into k={k} groups")
        mods.append(GroupSum(k, float(config.get("tau", 1.0)), device=device))
    model = nn.Sequential(*mods)
    if config.get("dtype"):
        dtype = getattr(torch, str(config["dtype"]), None)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"build_model: dtype must name a torch floating type, got {config['dtype']!r}")
        for m in model:
            if isinstance(m, (LogicLayer, LogicConv2d)):
                m.to(dtype)  # the Binarize keeps float32 thresholds (its rule is x > float32(t))
    return model


def save_checkpoint(model: nn.Module, path: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> None:
    """Write ``model``'s config and state_dict (on the CPU) to ``path`` (a ``.pt`` file)."""
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": model_config(model),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "extra": dict(extra) if extra is not None else None}
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    torch.save(payload, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw checkpoint dict (checked: format and version); raises ValueError on anything else."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ValueError(f"{os.fspath(path)}: not a readable lgc checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{os.fspath(path)}: not an lgc checkpoint (no format {CHECKPOINT_FORMAT!r})")
    if int(payload.get("version", 0)) > CHECKPOINT_VERSION:
        raise ValueError(f"{os.fspath(path)}: checkpoint version {payload.get('version')} is newer than this lgc "
                         f"understands ({CHECKPOINT_VERSION})")
    return payload


def load_checkpoint(path: str | os.PathLike, device: Any = "cpu", with_extra: bool = False,
                    implementation: str | None = None) -> Any:
    """Rebuild the model saved by ``save_checkpoint``, in eval mode (``.train()`` to resume training).

    Returns the model, or ``(model, extra)`` with ``with_extra=True``."""
    payload = read_checkpoint(path)
    model = build_model(payload["config"], device="cpu", implementation=implementation)
    state = payload["state_dict"]
    for name, m in model.named_modules():  # logits keep their stored dtype: a cast can change an argmax
        w = state.get(f"{name}.weights" if name else "weights") if isinstance(state, dict) else None
        if isinstance(getattr(m, "weights", None), torch.Tensor) and isinstance(w, torch.Tensor) \
                and w.is_floating_point() and w.dtype != m.weights.dtype:
            m.to(dtype=w.dtype)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"{os.fspath(path)}: state_dict does not match its config: {e}") from None
    model = model.to(device).eval()
    return (model, payload.get("extra")) if with_extra else model
