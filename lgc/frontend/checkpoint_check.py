"""Checks that make a ``.pt`` checkpoint an untrusted file like any other: bounded, intact, consistent.

``torch.load(weights_only=True)`` runs no code, but it reads whatever sizes the zip claims and does
not check the records' CRC-32 (a flipped bit in a tensor loads as a different circuit), and
``build_model`` allocates what the config claims before any tensor is compared with it. So, in order:

1. :func:`check_container` — the file is a zip archive (what ``torch.save`` writes) whose members
   are stored uncompressed, declare no more bytes than the file holds, and match their CRC-32s.
   O(file bytes), no allocation beyond one member at a time.
2. :func:`check_sizes` — after ``torch.load``: the config's unbacked counts (``in_dim``, an unflatten
   shape) obey :mod:`lgc.ir.limits`, and the parameters its layers imply (at least ``out_dim * 6``
   elements per logic layer, ``out_channels * (2**depth - 1) * 4`` per conv layer) are no more than
   the state_dict's tensors hold, so ``build_model`` allocates in proportion to the file.
3. :func:`check_model` — after ``load_state_dict``: operand indices in range and integer, logits
   floating and finite (conv wiring is checked by ``LogicConv2d`` itself on load).
Every failure is a :class:`lgc.ir.formats.FormatError` naming the file and the field.
"""
from __future__ import annotations

import math
import os
import zipfile
from typing import Any, Mapping

import torch
from torch import nn

from ..ir.formats import FormatError
from ..ir.limits import check_claim

_CONV_DEPTH_LIMIT = 16  # far above any real tree (the kernels take 4); keeps 2**depth finite


def check_container(path: str | os.PathLike) -> None:
    """FormatError unless ``path`` is an intact, uncompressed zip archive (see the module docstring)."""
    source = os.fspath(path)
    size = os.path.getsize(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            declared = 0
            for info in infos:
                declared += info.file_size
                if info.compress_type != zipfile.ZIP_STORED or declared > size:
                    raise FormatError(f"record {info.filename!r} is compressed or claims more bytes than the file "
                                      f"holds ({info.file_size}); torch.save writes records uncompressed", source=source)
            bad = zf.testzip()  # reads every record, checking its CRC-32
    except FormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise FormatError(f"not a readable lgc checkpoint (not an intact zip archive: {e})", source=source) from None
    if bad is not None:
        raise FormatError(f"record {bad!r} fails its CRC-32 check (the file is corrupt)", source=source)


def _implied_elements(config: Mapping[str, Any], file_bytes: int, fail) -> int:
    """A lower bound on the parameter and buffer elements a model built from ``config`` holds."""
    total = 0
    layers = config.get("layers", [])
    if not isinstance(layers, list):
        raise fail("config.layers is not a list")
    for i, spec in enumerate(layers):
        kind = spec.get("type", "logic") if isinstance(spec, Mapping) else "logic"
        try:
            if kind == "logic":
                out_dim = int(spec["out_dim"] if isinstance(spec, Mapping) else spec)
                total += 6 * max(out_dim, 0)  # >= 4 logits + 2 operand indices per gate
            elif kind == "conv":
                depth = int(spec.get("depth", 3))
                if not 0 < depth <= _CONV_DEPTH_LIMIT:
                    raise fail(f"config.layers[{i}].depth = {depth} is out of range")
                total += max(int(spec.get("out_channels", 1)), 0) * (2 ** depth - 1) * 4
            elif kind == "unflatten":
                shape = [int(v) for v in spec.get("shape", ())]
                check_claim(f"config.layers[{i}].shape", math.prod(shape) if shape else 0, file_bytes, fail)
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            if isinstance(e, FormatError):
                raise
            raise fail(f"config.layers[{i}] is malformed ({type(e).__name__}: {e})") from None
    return total


def check_sizes(payload: Mapping[str, Any], path: str | os.PathLike) -> None:
    """FormatError unless the config claims no more than the state_dict holds (see the module docstring)."""
    source = os.fspath(path)

    def fail(msg: str) -> FormatError:
        return FormatError(msg, source=source)

    config, state = payload.get("config"), payload.get("state_dict")
    if not isinstance(config, Mapping):
        raise fail("checkpoint has no config dict")
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                 for k, v in state.items()):
        raise fail("checkpoint state_dict is not a dict of named tensors")
    file_bytes = os.path.getsize(path)
    try:
        in_dim = int(config.get("in_dim", 0))
    except (TypeError, ValueError, OverflowError):
        raise fail(f"config.in_dim = {config.get('in_dim')!r} is not an integer") from None
    check_claim("config.in_dim", in_dim, file_bytes, fail)
    held = sum(int(t.numel()) for t in state.values())
    implied = _implied_elements(config, file_bytes, fail)
    if implied > held:
        raise fail(f"config claims layers of at least {implied} parameter elements but the state_dict holds "
                   f"{held}; the file is damaged or crafted")


def check_model(model: nn.Module, path: str | os.PathLike) -> None:
    """FormatError unless every loaded layer's wiring is in range and its logits are finite."""
    from .layers import LogicLayer, check_indices
    source = os.fspath(path)
    for name, m in model.named_modules():
        weights = getattr(m, "weights", None)
        if isinstance(weights, torch.Tensor) and (not weights.dtype.is_floating_point
                                                  or not bool(torch.isfinite(weights).all())):
            raise FormatError(f"module {name}: logits must be finite floating-point values", source=source)
        if isinstance(m, LogicLayer):
            try:
                check_indices(m.index_a, m.index_b, m.in_dim, m.out_dim)
            except ValueError as e:
                raise FormatError(f"module {name}: {e}", source=source) from None
