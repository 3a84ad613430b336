"""Model configs and checkpoints: rebuild a model without the script that trained it.

A model config is plain data (JSON-able) describing ``[Flatten] [Binarize] LogicLayer* [GroupSum]``
(each module kind writes and reads its own entry: :mod:`lgc.frontend.walk`)::

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

import math
import os
from typing import Any, Mapping

import torch
from torch import nn

from .._atomic import staged_path
from ..ir.formats import FormatError
from . import binarize, checkpoint_check, conv, layers  # noqa: F401  (register their module kinds)
from .walk import BuildContext, kind_named, trace
from .stack import sequential

CHECKPOINT_FORMAT = "lgc-checkpoint"
CHECKPOINT_VERSION = 1
_MODEL_KEYS = ("in_dim", "flatten", "binarize", "layers", "connections", "grad_factor", "residual_init",
               "parametrization", "implementation", "k", "tau", "dtype")


def model_config(model: nn.Module) -> dict[str, Any]:
    """The config (plain data, schema in the module docstring) that ``build_model`` turns back into a
    model of the same shape as ``model``. Raises ValueError for a module that has no config (see
    :func:`lgc.frontend.walk.supported`) or does not fit its input, as :func:`lgc.frontend.lower` does."""
    walked = trace(model, who="model_config")
    cfg: dict[str, Any] = {"in_dim": math.prod(walked.input_shape), "flatten": False, "binarize": None,
                           "layers": [], "k": None, "tau": 1.0}
    for step in walked.steps:
        kind, m = step.kind, step.module
        if kind.name == "flatten" and len(step.in_shape) == 1:     # flattening flat values: nothing to record
            cfg["flatten"] = cfg["flatten"] or step.pos == 0
            continue
        entry = kind.config(m)
        for key, value in kind.model_defaults(m).items():
            cfg.setdefault(key, value)
        if kind.role == "encoder":
            cfg["binarize"] = entry
        elif kind.role == "head":
            cfg.update(entry)
        else:
            cfg["layers"].append(entry if kind.name == "logic" else {"type": kind.name, **entry})
    cfg.setdefault("implementation", "auto")
    return cfg


def build_model(config: Mapping[str, Any], device: Any = "cpu", implementation: str | None = None) -> nn.Sequential:
    """A fresh ``nn.Sequential`` (a :class:`~lgc.frontend.stack.LogicSequential`, which trains a run of
    LogicLayers as one fused CPU call, when the model has one) from a model config (schema in the module docstring): random
    logits and wiring until a state_dict is loaded. ``implementation`` overrides the config's for every layer.
    Raises ValueError naming the first unknown key or the first entry that does not fit its input."""
    unknown = set(config) - set(_MODEL_KEYS)
    if unknown:
        raise ValueError(f"build_model: unknown config keys {sorted(unknown)}; known: {sorted(_MODEL_KEYS)}")
    if "in_dim" not in config or int(config["in_dim"]) < 1:
        raise ValueError("build_model: config needs in_dim >= 1 (raw features per sample)")
    shape: tuple[int, ...] = (int(config["in_dim"]),)
    mods: list[nn.Module] = [nn.Flatten()] if config.get("flatten", True) else []
    entries: list[tuple[str, str, Any]] = []
    if config.get("binarize") is not None:
        entries.append(("binarize", "binarize", config["binarize"]))
    for i, spec in enumerate(config.get("layers", [])):
        name = spec.get("type", "logic") if isinstance(spec, Mapping) else "logic"
        entries.append((f"layer {i}", name, spec))
    if config.get("k") is not None:
        entries.append(("the GroupSum head", "group_sum", {"k": config["k"], "tau": config.get("tau", 1.0)}))
    for index, (where, name, spec) in enumerate(entries):
        kind = kind_named(name)
        if kind is None or (kind.role in ("encoder", "head") and where.startswith("layer")):
            raise ValueError(f"build_model: {where} has unknown type {name!r}; known: logic (default), unflatten, "
                             f"conv, or_pool, flatten")
        ctx = BuildContext(device=device, implementation=implementation, config=config, index=index,
                           raw_input=not mods)
        try:
            m = kind.build(spec, shape, ctx)
            fixed = kind.input_shape(m) if ctx.raw_input else None
            if fixed is not None and math.prod(fixed) == math.prod(shape):
                shape = fixed                      # e.g. a first LogicConv2d(input_size=...) takes [C, H, W]
            shape = kind.output_shape(m, shape)
        except (TypeError, ValueError) as e:
            raise ValueError(f"build_model: {where} ({name}): {e}") from None
        mods.append(m)
    model = sequential(*mods)  # a LogicSequential (fuses runs of LogicLayers on the CPU kernel) if it has one
    if config.get("dtype"):
        dtype = getattr(torch, str(config["dtype"]), None)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"build_model: dtype must name a torch floating type, got {config['dtype']!r}")
        for m in model:
            if any(True for _ in m.parameters(recurse=False)):
                m.to(dtype)  # the Binarize keeps float32 thresholds (its rule is x > float32(t))
    return model


def save_checkpoint(model: nn.Module, path: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> None:
    """Write ``model``'s config (:func:`model_config`) and state_dict (tensors moved to the CPU) to
    ``path`` (a ``.pt`` file, replaced atomically). ``extra``: plain data (numbers, strings, lists,
    dicts, tensors) stored beside them, e.g. the epoch and accuracy. Raises ValueError when the
    model has no config (an unsupported module)."""
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": model_config(model),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "extra": dict(extra) if extra is not None else None}
    with staged_path(path) as staged:
        torch.save(payload, staged)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw checkpoint dict ``{"format", "version", "config", "state_dict", "extra"}``, read with
    ``torch.load(weights_only=True)`` (no code runs) after :mod:`.checkpoint_check` has checked the
    container, and checked again for format, version and sizes. Raises FileNotFoundError for a
    missing file, FormatError (a ValueError) for anything else."""
    checkpoint_check.check_container(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise FormatError(f"not a readable lgc checkpoint ({type(e).__name__}: {e})", source=os.fspath(path)) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise FormatError(f"not an lgc checkpoint (no format {CHECKPOINT_FORMAT!r})", source=os.fspath(path))
    if type(payload.get("version")) is not int or payload["version"] > CHECKPOINT_VERSION:
        raise FormatError(f"checkpoint version {payload.get('version')!r} is not one this lgc understands "
                          f"(1..{CHECKPOINT_VERSION})", source=os.fspath(path))
    checkpoint_check.check_sizes(payload, path)
    return payload


def load_checkpoint(path: str | os.PathLike, device: Any = "cpu", with_extra: bool = False,
                    implementation: str | None = None) -> Any:
    """Rebuild the model saved by ``save_checkpoint``, in eval mode (``.train()`` to resume training),
    on ``device``; ``implementation`` overrides every layer's kernel choice.

    Returns the ``nn.Sequential``, or ``(model, extra)`` with ``with_extra=True``. Raises what
    :func:`read_checkpoint` raises, and ValueError when the state_dict does not match the config."""
    payload = read_checkpoint(path)
    try:
        model = build_model(payload["config"], device="cpu", implementation=implementation)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
        raise FormatError(f"bad model config: {type(e).__name__}: {e}", source=os.fspath(path)) from None
    state = payload["state_dict"]
    for name, m in model.named_modules():  # logits keep their stored dtype: a cast can change an argmax
        w = state.get(f"{name}.weights" if name else "weights") if isinstance(state, dict) else None
        if isinstance(getattr(m, "weights", None), torch.Tensor) and isinstance(w, torch.Tensor) \
                and w.is_floating_point() and w.dtype != m.weights.dtype:
            m.to(dtype=w.dtype)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, ValueError) as e:
        raise FormatError(f"state_dict does not match its config: {e}", source=os.fspath(path)) from None
    checkpoint_check.check_model(model, path)
    model = model.to(device).eval()
    return (model, payload.get("extra")) if with_extra else model
