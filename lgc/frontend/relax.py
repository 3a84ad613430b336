"""The gate relaxation shared by every training layer: logits -> 4 coefficients per gate.

A softmax mixture of the 16 gates is ``c0 + c1 p + c2 q + c3 pq`` with ``c = softmax(w) @ RELAX``
(see DESIGN.md, "The gate semantics"). Computing ``c`` costs O(gates * 16) and does not depend on
the batch, so it runs in PyTorch (autograd handles the softmax) and the batch-sized work — the
bilinear gate ``y = c0 + c1 p + c2 q + c3 pq`` and its gradients — runs in one fused kernel.
Keeping the kernels on coefficients (not logits) lets a layer with shared weights, such as a
convolutional logic layer, gather its coefficients per gate and reuse the same kernels.
"""
from __future__ import annotations

import functools
from typing import Callable

import torch

from lgc.ir import ops as _ops

#: Logit of the pass-through gate A (op 3) under residual initialisation; all other logits are 0,
#: so A gets e^5 / (e^5 + 15) ~ 91% of the mass (Petersen et al. 2024, convolutional DLGNs).
RESIDUAL_LOGIT = 5.0
PASS_THROUGH_OP = _ops.A


@functools.lru_cache(maxsize=None)
def _relax_matrix(device: str, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(_ops.RELAX, dtype=dtype, device=device)


def relax_matrix(like: torch.Tensor) -> torch.Tensor:
    """RELAX [16, 4] (f00, f10 - f00, f01 - f00, f00 - f01 - f10 + f11) on ``like``'s device/dtype."""
    return _relax_matrix(str(like.device), like.dtype)


def gate_coefficients(weights: torch.Tensor, hard: bool) -> torch.Tensor:
    """Coefficients ``c [..., 4]`` of the relaxed gates from logits ``weights [..., 16]``.

    ``hard=False``: softmax mixture (training). ``hard=True``: the argmax gate (lowest index on
    ties, as ``torch.argmax`` returns the first maximum), whose coefficients are integers, so the
    output on 0/1 inputs is exactly that gate's truth table.
    """
    relax = relax_matrix(weights)
    if hard:
        return relax[weights.argmax(dim=-1)]
    return torch.softmax(weights, dim=-1) @ relax


#: Training relaxations of the gate choice (the eval-mode argmax gate is the same for all of them):
#: ``softmax`` mixes the 16 gates by softmax(logits) (difflogic); ``gumbel-st`` draws one gate per
#: gate and step as argmax(logits + Gumbel noise) and runs it hard in the forward pass, with the
#: gradient of the Gumbel-softmax mixture (straight-through; Yousefi et al., "Mind the Gap",
#: NeurIPS 2025): training then sees the discrete circuit, which shrinks the train/eval gap;
#: ``hard-st`` is the same without noise (the argmax gate forward, the softmax gradient backward).
#: Every kind takes a temperature T (softmax(logits / T)); annealing T towards 0 during training
#: hardens the softmax mixture step by step.
RELAXATIONS = ("softmax", "gumbel-st", "hard-st")


def gumbel_st_coefficients(weights: torch.Tensor, temperature: float = 1.0,
                           generator: torch.Generator | None = None, noise: bool = True) -> torch.Tensor:
    """Straight-through Gumbel coefficients ``[..., 4]``: forward the sampled gate's integer
    coefficients, backward the gradient of ``softmax((weights + g) / temperature) @ RELAX``
    (``noise=False``: g = 0, the hard-st relaxation)."""
    relax = relax_matrix(weights)
    z = weights
    if noise:
        u = torch.rand(weights.shape, device=weights.device, dtype=weights.dtype, generator=generator)
        z = z - torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))
    z = z / temperature
    soft = torch.softmax(z, dim=-1) @ relax
    hard = relax[z.detach().argmax(dim=-1)]
    return hard + (soft - soft.detach())   # exactly hard in value (soft + (hard - soft) is not, in floats)


def relaxed_coefficients(layer: torch.nn.Module, weights: torch.Tensor | None = None,
                         soft: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """A logic layer's coefficients for its mode and ``layer.relaxation`` (see ``set_relaxation``).

    ``weights``: the logits to use (default ``layer.weights``; a layer passes a dtype-cast copy).
    ``soft``: the softmax-mixture function at temperature 1 (a fused kernel), default ``gate_coefficients``.
    """
    w = layer.weights if weights is None else weights
    if not layer.training:
        return gate_coefficients(w, hard=True)
    kind, temperature = getattr(layer, "relaxation", ("softmax", 1.0))
    if kind in ("gumbel-st", "hard-st"):
        return gumbel_st_coefficients(w, temperature, noise=kind == "gumbel-st")
    if temperature != 1.0:   # softmax(w / T): T -> 0 anneals the mixture towards the argmax gate
        return gate_coefficients(w / temperature, hard=False)
    return soft(w) if soft is not None else gate_coefficients(w, hard=False)


def set_relaxation(model: torch.nn.Module, kind: str = "softmax", temperature: float = 1.0) -> torch.nn.Module:
    """Set the training relaxation (``RELAXATIONS``) of every logic layer in ``model``; returns ``model``.

    A training choice, not part of the architecture: eval mode, lowering and checkpoints do not
    depend on it (a reloaded model trains with ``softmax`` until this is called again).
    """
    if kind not in RELAXATIONS:
        raise ValueError(f"relaxation must be one of {RELAXATIONS}, got {kind!r}")
    if not temperature > 0:
        raise ValueError(f"relaxation temperature must be > 0, got {temperature!r}")
    for m in model.modules():
        if isinstance(getattr(m, "weights", None), torch.Tensor) and hasattr(m, "coefficients"):
            m.relaxation = (kind, float(temperature))
    return model


def hard_ops(weights: torch.Tensor) -> torch.Tensor:
    """The op code of each gate in eval mode: argmax of the logits, lowest index on ties."""
    return weights.detach().argmax(dim=-1)


def residual_logits(out_dim: int, logit: float = RESIDUAL_LOGIT, device=None, dtype=None) -> torch.Tensor:
    """Logits with most mass on the pass-through gate A (op 3): 0 everywhere, ``logit`` at op 3."""
    w = torch.zeros(out_dim, _ops.NUM_OPS, device=device, dtype=dtype)
    w[:, PASS_THROUGH_OP] = logit
    return w


def bilinear_gate(p: torch.Tensor, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``c0 + c1 p + c2 q + c3 pq`` in PyTorch (autograd), with ``c [out, 4]`` broadcast over the batch.

    Written as ``c0 + p (c1 + c3 q) + c2 q`` to keep to three batch-sized temporaries.
    """
    c0, c1, c2, c3 = c.unbind(-1)
    return torch.addcmul(c0 + c2 * q, p, c1 + c3 * q)
