"""The gate relaxation shared by every training layer: logits -> 4 coefficients per gate.

A relaxed gate is ``c0 + c1 p + c2 q + c3 pq`` (see DESIGN.md, "The gate semantics"). Two
parametrizations of the logits give ``c``:

- ``gates`` (difflogic): 16 logits per gate, one per Boolean function; ``c = softmax(w) @ RELAX``;
  the eval gate is the argmax.
- ``inputwise`` (Rüttgers et al., "Light Differentiable Logic Gate Networks", ICLR 2026): 4 logits
  per gate, one per truth-table row ``(f00, f01, f10, f11)`` (``f_ab`` = output for p = a, q = b);
  ``c = sigmoid(w) @ INPUTWISE``; the eval gate's truth table is ``w > 0``. A softmax mixture's
  output depends only on its marginal truth table, so both describe the same relaxed gates;
  input-wise has no redundant directions in logit space, which the paper reports trains in far
  fewer steps and keeps gradients from vanishing in deep networks.

A layer's parametrization is the last dimension of its ``weights`` (16 or 4), so every function
here dispatches on it. Computing ``c`` costs O(gates * 16) and does not depend on the batch, so
it runs in PyTorch (autograd handles the softmax) and the batch-sized work — the bilinear gate
``y = c0 + c1 p + c2 q + c3 pq`` and its gradients — runs in one fused kernel. Keeping the
kernels on coefficients (not logits) lets a layer with shared weights, such as a convolutional
logic layer, gather its coefficients per gate and reuse the same kernels.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np
import torch

from lgc.ir import ops as _ops

#: Logit of the pass-through gate A (op 3) under residual initialisation; all other logits are 0,
#: so A gets e^5 / (e^5 + 15) ~ 91% of the mass (Petersen et al. 2024, convolutional DLGNs).
RESIDUAL_LOGIT = 5.0
PASS_THROUGH_OP = _ops.A

#: Logits per gate: 16 (one per gate, difflogic) or 4 (one per truth-table row, input-wise).
PARAMETRIZATIONS = {"gates": _ops.NUM_OPS, "inputwise": 4}

#: Truth-table row weights of each op code: op = 8 f00 + 4 f01 + 2 f10 + f11 (``ops.TRUTH`` order).
ROW_WEIGHTS = np.array([8, 4, 2, 1])

#: INPUTWISE [4, 4]: truth-table rows (f00, f01, f10, f11) -> coefficients (c0, c1, c2, c3);
#: ``TRUTH[op].reshape(4) @ INPUTWISE == RELAX[op]`` for every op (tested).
INPUTWISE = np.array([[1, -1, -1, 1],    # f00
                      [0, 0, 1, -1],     # f01
                      [0, 1, 0, -1],     # f10
                      [0, 0, 0, 1]],     # f11
                     dtype=np.float64)


def parametrization_of(weights: torch.Tensor) -> str:
    """``gates`` or ``inputwise``, from the last dimension of ``weights`` (ValueError otherwise)."""
    n = weights.shape[-1] if weights.dim() else None
    for name, size in PARAMETRIZATIONS.items():
        if n == size:
            return name
    raise ValueError(f"gate logits must have a last dimension of 16 (gates) or 4 (inputwise), "
                     f"got shape {list(weights.shape)}")


def check_parametrization(parametrization: str) -> int:
    """Logits per gate for ``parametrization``; ValueError for an unknown name."""
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {tuple(PARAMETRIZATIONS)}, got {parametrization!r}")
    return PARAMETRIZATIONS[parametrization]


def inputwise_residual_logit(logit: float) -> float:
    """The input-wise logit magnitude whose truth table equals the marginal truth table of the
    gates-parametrized residual init with pass-through ``logit`` (A at ``logit``, 15 gates at 0):
    A's rows get probability ``(e^logit + 7) / (e^logit + 15)``, so ``residual_init`` means the
    same relaxed gate in both parametrizations (logit 5 -> 2.97, logit 2 -> 0.59)."""
    t = (math.exp(logit) + 7.0) / (math.exp(logit) + 15.0)
    return math.log(t / (1.0 - t))


def init_logits(gates: int, parametrization: str = "gates", residual_init: bool | float | None = False,
                device: Any = None) -> torch.Tensor:
    """Initial logits ``[gates, 16 | 4]``: N(0, 1) like difflogic (``residual_init`` False/None), else
    most mass on the pass-through gate A (``True``: logit ``RESIDUAL_LOGIT``, or the float given)."""
    n = check_parametrization(parametrization)
    if residual_init is False or residual_init is None:
        return torch.randn(gates, n, device=device)
    logit = RESIDUAL_LOGIT if residual_init is True else float(residual_init)
    if parametrization == "gates":
        return residual_logits(gates, logit, device=device)
    rows = torch.tensor(_ops.TRUTH[PASS_THROUGH_OP].reshape(4), dtype=torch.float32, device=device)
    return ((2 * rows - 1) * inputwise_residual_logit(logit)).expand(gates, 4).contiguous()


@functools.lru_cache(maxsize=None)
def _matrix(name: str, device: str, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(_ops.RELAX if name == "gates" else INPUTWISE, dtype=dtype, device=device)


def relax_matrix(like: torch.Tensor) -> torch.Tensor:
    """The logits -> coefficients matrix for ``like``'s parametrization, on its device/dtype:
    RELAX [16, 4] (f00, f10 - f00, f01 - f00, f00 - f01 - f10 + f11) or INPUTWISE [4, 4]."""
    return _matrix(parametrization_of(like), str(like.device), like.dtype)


def _probabilities(z: torch.Tensor) -> torch.Tensor:
    """Gate probabilities (softmax over 16) or truth-table row probabilities (sigmoid of 4)."""
    return torch.softmax(z, dim=-1) if z.shape[-1] == _ops.NUM_OPS else torch.sigmoid(z)


def gate_coefficients(weights: torch.Tensor, hard: bool) -> torch.Tensor:
    """Coefficients ``c [..., 4]`` (the dtype and device of ``weights``) of the relaxed gates from logits
    ``weights [..., 16 | 4]``: the gate's output is ``c0 + c1 p + c2 q + c3 pq`` for input probabilities
    p, q (Petersen et al., NeurIPS 2022, in the 4-coefficient form; input-wise: Rüttgers et al.,
    arXiv 2510.03250). Raises ValueError for a last dimension other than 16 or 4.

    ``hard=False``: the relaxed gate (training): softmax mixture, or sigmoid truth table.
    ``hard=True``: the eval gate (``hard_ops``: the argmax gate, lowest index on ties, or the
    truth table ``w > 0``), whose coefficients are integers, so the output on 0/1 inputs is
    exactly that gate's truth table.
    """
    if hard:
        return _matrix("gates", str(weights.device), weights.dtype)[hard_ops(weights)]
    return _probabilities(weights) @ relax_matrix(weights)


#: Training relaxations of the gate choice (the eval-mode gate is the same for all of them):
#: ``softmax`` mixes the 16 gates by softmax(logits) (difflogic); ``gumbel-st`` draws one gate per
#: gate and step as argmax(logits + Gumbel noise) and runs it hard in the forward pass, with the
#: gradient of the Gumbel-softmax mixture (straight-through; Yousefi et al., "Mind the Gap",
#: NeurIPS 2025): training then sees the discrete circuit, which shrinks the train/eval gap;
#: ``hard-st`` is the same without noise (the argmax gate forward, the softmax gradient backward).
#: Every kind takes a temperature T (softmax(logits / T)); annealing T towards 0 during training
#: hardens the softmax mixture step by step. Input-wise logits use the binary analogues: sigmoid
#: rows, logistic noise (the difference of two Gumbels), the rows ``w > 0`` forward.
RELAXATIONS = ("softmax", "gumbel-st", "hard-st")


def gumbel_st_coefficients(weights: torch.Tensor, temperature: float = 1.0,
                           generator: torch.Generator | None = None, noise: bool = True) -> torch.Tensor:
    """Straight-through Gumbel coefficients ``[..., 4]``: forward the sampled gate's integer
    coefficients, backward the gradient of the relaxed gate at ``(weights + g) / temperature``
    (``noise=False``: g = 0, the hard-st relaxation). g is Gumbel noise for 16 gate logits and
    logistic noise for 4 input-wise logits (Gumbel-max over 16 gates / binary Concrete per row)."""
    relax = relax_matrix(weights)
    z = weights
    if noise:
        u = torch.rand(weights.shape, device=weights.device, dtype=weights.dtype, generator=generator)
        u = u.clamp(1e-10, 1.0 - 1e-7)
        z = z - torch.log(-torch.log(u)) if z.shape[-1] == _ops.NUM_OPS else z + torch.log(u) - torch.log1p(-u)
    z = z / temperature
    soft = _probabilities(z) @ relax
    hard = gate_coefficients(z.detach(), hard=True)
    return hard + (soft - soft.detach())   # exactly hard in value (soft + (hard - soft) is not, in floats)


def relaxed_coefficients(layer: torch.nn.Module, dtype: torch.dtype | None = None,
                         soft: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """A logic layer's coefficients for its mode and ``layer.relaxation`` (see ``set_relaxation``).

    ``dtype``: the dtype of the result (the input's; default the weights' own).
    Eval mode: the eval gate of the *stored* weights, chosen in their stored dtype (argmax, lowest
    index on ties; input-wise ``w > 0``) and only then cast (its coefficients are small integers,
    exact in every float dtype), so the gate never depends on the input's dtype or device and
    always equals the lowered circuit. Train mode: ``softmax`` relaxes the logits cast to ``dtype``;
    ``gumbel-st`` / ``hard-st`` pick their forward gate from the stored logits and cast the result.
    ``soft``: the relaxed-gate function at temperature 1 (a fused kernel), default ``gate_coefficients``.
    """
    w = layer.weights
    if not layer.training:
        c = gate_coefficients(w, hard=True)
        return c if dtype is None or c.dtype == dtype else c.to(dtype)
    kind, temperature = getattr(layer, "relaxation", ("softmax", 1.0))
    if kind in ("gumbel-st", "hard-st"):
        # the forward's gate is drawn from the stored logits, like the eval gate: in the input's dtype
        # (bfloat16, say) near-equal logits would tie and change the gate the forward runs
        c = gumbel_st_coefficients(w, temperature, noise=kind == "gumbel-st")
        return c if dtype is None or c.dtype == dtype else c.to(dtype)
    if dtype is not None and w.dtype != dtype:
        w = w.to(dtype)
    if temperature != 1.0:   # softmax(w / T): T -> 0 anneals the mixture towards the eval gate
        return gate_coefficients(w / temperature, hard=False)
    return soft(w) if soft is not None else gate_coefficients(w, hard=False)


def set_relaxation(model: torch.nn.Module, kind: str = "softmax", temperature: float = 1.0) -> torch.nn.Module:
    """Set the training relaxation (``RELAXATIONS``) of every logic layer in ``model``; returns ``model``.
    ``temperature`` (> 0, unitless) divides the logits before the softmax/sigmoid. Raises ValueError
    for an unknown ``kind`` or a temperature that is not positive.

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
    """The op code (int64 tensor ``[...]``, on the weights' device) of each gate in eval mode, from
    logits ``[..., 16 | 4]`` in their stored dtype: the argmax of 16 gate logits (lowest index on
    ties), or the truth table ``w > 0`` of 4 input-wise logits (op = 8 f00 + 4 f01 + 2 f10 + f11)."""
    w = weights.detach()
    if parametrization_of(w) == "gates":
        return w.argmax(dim=-1)
    return ((w > 0).to(torch.int64) * torch.as_tensor(ROW_WEIGHTS, device=w.device)).sum(-1)


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
