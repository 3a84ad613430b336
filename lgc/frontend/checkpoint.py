"""Model configs and checkpoints: rebuild a model without the script that trained it.

A model config is plain data (JSON-able) describing ``[Flatten] [Binarize] LogicLayer* [GroupSum]``::

    {
      "in_dim": 784,                 # raw features per sample after flattening (required)
      "flatten": true,               # start with nn.Flatten (default true)
      "binarize": null | {"thresholds": 0.5 | [t1, t2, ...] | [[per-feature] * T],
                          "train_passthrough": false},   # optional; first layer then reads in_dim * T bits
      "layers": [8000, 8000, {"out_dim": 8000, "connections": "unique",
                              "grad_factor": 1.0, "residual_init": false}],   # ints or dicts
      "connections": "random", "grad_factor": 1.0, "residual_init": false,    # defaults for the layers
      "implementation": "auto",      # auto | python | cpu | cuda
      "k": 10, "tau": 10.0,          # GroupSum head; k null (or absent) -> no head
      "dtype": "float32"             # optional
    }

``model_config(model)`` writes the explicit form; ``build_model(config)`` builds a fresh model
(random logits and wiring unless a state_dict is loaded afterwards). A checkpoint (``.pt``) is
``{"format": "lgc-checkpoint", "version": 1, "config", "state_dict", "extra"}`` saved with
``torch.save`` and read with ``weights_only=True``, so ``extra`` must be plain data (numbers,
strings, lists, dicts, tensors).
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import torch
from torch import nn

from .binarize import Binarize
from .layers import GroupSum, LogicLayer
from .lower import _is_plain_flatten, _modules

CHECKPOINT_FORMAT = "lgc-checkpoint"
CHECKPOINT_VERSION = 1
_LAYER_KEYS = ("out_dim", "connections", "grad_factor", "residual_init")


def model_config(model: nn.Module) -> dict[str, Any]:
    """The config that ``build_model`` turns back into a model of the same shape as ``model``."""
    mods = _modules(model)
    cfg: dict[str, Any] = {"in_dim": None, "flatten": bool(mods) and _is_plain_flatten(mods[0]),
                           "binarize": None, "layers": [], "k": None, "tau": 1.0, "implementation": "auto"}
    thresholds = 1
    for pos, m in enumerate(mods):
        if _is_plain_flatten(m) or isinstance(m, nn.Identity):
            continue
        if isinstance(m, Binarize) and cfg["binarize"] is None and not cfg["layers"]:
            bc = m.config()
            cfg["binarize"] = {"thresholds": bc["thresholds"], "train_passthrough": bc["train_passthrough"]}
            thresholds = m.num_thresholds
            if bc["num_features"] is not None:
                cfg["in_dim"] = bc["num_features"]
        elif isinstance(m, LogicLayer) and cfg["k"] is None:
            if not cfg["layers"]:
                if cfg["in_dim"] is None:
                    if m.in_dim % thresholds:
                        raise ValueError(f"model_config: LogicLayer in_dim {m.in_dim} is not a multiple of the "
                                         f"Binarize's {thresholds} thresholds")
                    cfg["in_dim"] = m.in_dim // thresholds
                elif cfg["in_dim"] * thresholds != m.in_dim:
                    raise ValueError(f"model_config: Binarize emits {cfg['in_dim'] * thresholds} bits, "
                                     f"the first LogicLayer reads {m.in_dim}")
                cfg["implementation"] = m.implementation
                cfg["dtype"] = str(m.weights.dtype).replace("torch.", "")
            elif m.in_dim != cfg["layers"][-1]["out_dim"]:
                raise ValueError(f"model_config: module {pos} has in_dim {m.in_dim}, previous layer out_dim "
                                 f"{cfg['layers'][-1]['out_dim']}")
            cfg["layers"].append({"out_dim": m.out_dim, "connections": m.connections, "grad_factor": m.grad_factor,
                                  "residual_init": m.residual_init})
        elif isinstance(m, GroupSum) and cfg["k"] is None:
            cfg["k"], cfg["tau"] = m.k, m.tau
        else:
            raise ValueError(f"model_config: unsupported module {pos}: {type(m).__name__}; a checkpointable "
                             f"model is [Flatten] [Binarize] LogicLayer* [GroupSum]")
    if cfg["in_dim"] is None:
        raise ValueError("model_config: the model has no LogicLayer and no Binarize with a known feature count")
    return cfg


def build_model(config: Mapping[str, Any], device: Any = "cpu", implementation: str | None = None) -> nn.Sequential:
    """A fresh ``nn.Sequential`` from a model config (schema in the module docstring)."""
    known = {"in_dim", "flatten", "binarize", "layers", "connections", "grad_factor", "residual_init",
             "implementation", "k", "tau", "dtype"}
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
        if isinstance(spec, Mapping):
            extra = set(spec) - set(_LAYER_KEYS)
            if extra or "out_dim" not in spec:
                raise ValueError(f"build_model: layer {i} needs out_dim and only {_LAYER_KEYS}, got {dict(spec)}")
        else:
            spec = {"out_dim": spec}
        layer = LogicLayer(width, int(spec["out_dim"]), device=device,
                           grad_factor=float(spec.get("grad_factor", config.get("grad_factor", 1.0))),
                           implementation=impl, connections=spec.get("connections", config.get("connections", "random")),
                           residual_init=spec.get("residual_init", config.get("residual_init", False)))
        mods.append(layer)
        width = layer.out_dim
    if config.get("k") is not None:
        k = int(config["k"])
        if width % k:
            raise ValueError(f"build_model: the last layer's {width} outputs cannot be split into k={k} groups")
        mods.append(GroupSum(k, float(config.get("tau", 1.0)), device=device))
    model = nn.Sequential(*mods)
    if config.get("dtype"):
        dtype = getattr(torch, str(config["dtype"]), None)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"build_model: dtype must name a torch floating type, got {config['dtype']!r}")
        for m in model:
            if isinstance(m, LogicLayer):
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
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"{os.fspath(path)}: state_dict does not match its config: {e}") from None
    model = model.to(device).eval()
    return (model, payload.get("extra")) if with_extra else model
