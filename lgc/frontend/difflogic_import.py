"""Importing difflogic models: ``from_difflogic(model)`` -> an equal lgc ``nn.Sequential``.

difflogic's modules are read by attribute, so difflogic need not be installed. Cost: one copy of
each layer's logits and wiring.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .binarize import Binarize
from .layers import GroupSum, LogicLayer


def _is_difflogic_layer(m: Any) -> bool:
    return all(hasattr(m, n) for n in ("weights", "indices", "in_dim", "out_dim"))


def _is_difflogic_group_sum(m: Any) -> bool:
    return hasattr(m, "k") and hasattr(m, "tau") and not hasattr(m, "weights")


def from_difflogic(model: Any, implementation: str = "auto") -> nn.Sequential:
    """An equal lgc model from a difflogic ``nn.Sequential`` (or any iterable of modules), read by
    attributes so difflogic need not be installed.

    difflogic ``LogicLayer`` (``weights [out, 16]``, ``indices = (a, b)``, ``in_dim``, ``out_dim``,
    optional ``grad_factor``) becomes :class:`LogicLayer` with the same logits and wiring;
    ``GroupSum`` (``k``, ``tau``) becomes :class:`GroupSum`; ``Flatten``/``Identity`` are kept.
    Anything else raises ValueError naming it. The result is on the weights' device and in the
    input model's train/eval mode.
    """
    mods = list(model) if isinstance(model, (nn.Sequential, list, tuple)) else [model]
    out: list[nn.Module] = []
    for pos, m in enumerate(mods):
        if isinstance(m, (nn.Flatten, nn.Identity, LogicLayer, GroupSum, Binarize)):
            out.append(m)
        elif _is_difflogic_layer(m):
            w = torch.as_tensor(m.weights).detach()
            if w.dim() != 2 or w.shape != (int(m.out_dim), 16):
                raise ValueError(f"difflogic module {pos}: weights must be [out_dim={m.out_dim}, 16], got {list(w.shape)}")
            try:
                a, b = m.indices
            except (TypeError, ValueError):
                raise ValueError(f"difflogic module {pos}: indices must be a pair (a, b) of index tensors") from None
            layer = LogicLayer(int(m.in_dim), int(m.out_dim), device=w.device,
                               grad_factor=float(getattr(m, "grad_factor", 1.0)), implementation=implementation)
            if w.is_floating_point():  # keep the logits' dtype: casting can change their argmax
                layer.to(dtype=w.dtype)
            with torch.no_grad():
                layer.weights.copy_(w)
            layer.set_indices(a, b)
            out.append(layer)
        elif _is_difflogic_group_sum(m):
            out.append(GroupSum(int(m.k), float(m.tau)))
        else:
            raise ValueError(f"from_difflogic: unsupported module {pos}: {type(m).__name__}; expected difflogic "
                             f"LogicLayer (weights, indices, in_dim, out_dim), GroupSum (k, tau) or Flatten")
    seq = nn.Sequential(*out)
    seq.train(bool(getattr(model, "training", True)))
    return seq
