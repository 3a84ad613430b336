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
