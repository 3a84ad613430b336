"""difflogic-compatible training modules: ``LogicLayer`` and ``GroupSum``.

Same constructor arguments and training behaviour as difflogic (softmax over 16 gate logits in
train mode, the argmax gate in eval mode, ``random``/``unique`` wiring, ``grad_factor``), with
three differences that matter: the operand indices are registered buffers (in ``state_dict``,
moved by ``.to()``), the relaxation uses the 4-coefficient form (one fused expression, no 16
temporaries), and the input gradient of a gate whose two operands are the same node is
``df/dp + df/dq``. The batch-sized work runs in one of the implementations of :mod:`.kernels`.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from lgc.ir import GroupSumHead

from . import kernels
from .connections import CONNECTIONS, make_connections
from .relax import check_parametrization, hard_ops, init_logits, relaxed_coefficients
from .walk import BuildContext, ModuleKind, Shape, check_keys, module_kind


class LogicLayer(nn.Module):
    """A layer of ``out_dim`` two-input gates, each reading two of the ``in_dim`` inputs (Petersen et
    al., "Deep Differentiable Logic Gate Networks", NeurIPS 2022; difflogic's ``LogicLayer``).

    Input ``x [batch, in_dim]`` (or ``[..., in_dim]``) with values in [0, 1]; output
    ``[batch, out_dim]``. Train mode: each gate is the softmax(``weights``) mixture of the 16
    gates (``inputwise``: the sigmoid truth table), relaxed as probabilities. Eval mode: each gate
    is its argmax gate, lowest index on ties (``inputwise``: the truth table ``weights > 0``), so
    on 0/1 inputs the output is exactly the hard circuit's bits.

    ``residual_init``: ``False`` draws logits from N(0, 1) like difflogic; ``True`` (or a float)
    sets every logit to 0 except the pass-through gate A (op 3) at 5.0 (or the float), so deep
    networks start close to the identity (~91% mass on A; convolutional DLGN paper).
    ``parametrization``: ``gates`` (16 logits per gate, difflogic) or ``inputwise`` (4 logits per
    gate, one per truth-table row; see :mod:`lgc.frontend.relax`).
    ``implementation``: ``auto`` | ``python`` | ``cpu`` | ``cuda`` (see :mod:`lgc.frontend.kernels`);
    ``None`` (difflogic's default) means ``auto``. difflogic's ``num_neurons`` and ``num_weights``
    (both ``out_dim``) and an assignable ``indices`` are here too.
    ``generator``: optional ``torch.Generator`` for the wiring (default: torch's global RNG).
    Raises ValueError for non-positive sizes or an unknown implementation, connections or
    parametrization; ``forward`` raises ValueError for an input whose last dimension is not ``in_dim``.
    """

    #: training relaxation (kind, temperature); set by ``lgc.frontend.set_relaxation``
    relaxation: tuple[str, float] = ("softmax", 1.0)

    def __init__(self, in_dim: int, out_dim: int, device: Any = "cpu", grad_factor: float = 1.0,
                 implementation: str | None = "auto", connections: str = "random", residual_init: bool | float = False,
                 generator: torch.Generator | None = None, parametrization: str = "gates"):
        super().__init__()
        if int(in_dim) != in_dim or int(out_dim) != out_dim or in_dim < 1 or out_dim < 1:
            raise ValueError(f"LogicLayer needs positive integer in_dim and out_dim, got {in_dim!r}, {out_dim!r}")
        implementation = "auto" if implementation is None else implementation
        if implementation not in kernels.IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {kernels.IMPLEMENTATIONS}, got {implementation!r}")
        if connections not in CONNECTIONS:
            raise ValueError(f"connections must be one of {CONNECTIONS}, got {connections!r}")
        check_parametrization(parametrization)
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        self.grad_factor = float(grad_factor)
        self.implementation = implementation
        self.connections = connections
        self.residual_init = residual_init
        self.parametrization = parametrization
        self.weights = nn.Parameter(init_logits(self.out_dim, parametrization, residual_init, device))
        a, b = make_connections(connections, self.in_dim, self.out_dim, generator)
        self.register_buffer("index_a", a.to(device))
        self.register_buffer("index_b", b.to(device))

    @property
    def indices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a, b)`` operand indices, as difflogic names them. Assigning a pair ``(a, b)`` is
        :meth:`set_indices` (checked; the buffers, so ``state_dict`` and lowering, follow)."""
        return self.index_a, self.index_b

    @indices.setter
    def indices(self, value: Any) -> None:
        if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[0] == 2:
            value = (value[0], value[1])
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise ValueError(f"indices must be a pair (a, b) of [{self.out_dim}] index tensors")
        self.set_indices(*value)

    @property
    def num_neurons(self) -> int:
        """difflogic's name for the number of gates (``out_dim``)."""
        return self.out_dim

    @property
    def num_weights(self) -> int:
        """difflogic's count of weight vectors, one per gate (``out_dim``)."""
        return self.out_dim

    def set_indices(self, a: Any, b: Any) -> None:
        """Replace the wiring (checked: int64 [out_dim] each, values in 0..in_dim-1)."""
        a = torch.as_tensor(a).to(device=self.weights.device, dtype=torch.int64).reshape(-1).contiguous()
        b = torch.as_tensor(b).to(device=self.weights.device, dtype=torch.int64).reshape(-1).contiguous()
        check_indices(a, b, self.in_dim, self.out_dim)
        self.index_a, self.index_b = a, b

    def _load_from_state_dict(self, state_dict, prefix, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        check_indices(self.index_a, self.index_b, self.in_dim, self.out_dim)

    def coefficients(self) -> torch.Tensor:
        """The gates' relaxation coefficients [out_dim, 4] for the current mode."""
        return relaxed_coefficients(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) and hasattr(x, "then"):
            return x.then(self)  # a PackBitsTensor (lgc.compat) queues the layer; duck-typed to keep layering
        if x.dim() < 1 or x.shape[-1] != self.in_dim:
            raise ValueError(f"LogicLayer({self.in_dim}, {self.out_dim}) expects input [..., {self.in_dim}], "
                             f"got {list(x.shape)}")
        lead = x.shape[:-1]
        if x.dim() != 2:
            x = x.reshape(-1, self.in_dim)
        if not x.is_floating_point():
            x = x.to(self.weights.dtype)
        impl = kernels.resolve(self.implementation, x)
        fused = self.parametrization == "gates"   # the kernels fuse the 16-way softmax only
        # eval: the gate is chosen from the stored weights, then cast (never argmax of cast logits)
        c = relaxed_coefficients(self, x.dtype, soft=(lambda v: impl.coefficients(v, False)) if fused else None)
        y = impl.logic(x, c, self.index_a, self.index_b, self.grad_factor)
        return y if len(lead) == 1 else y.reshape(*lead, self.out_dim)

    def extra_repr(self) -> str:
        extra = "" if self.connections == "random" else f", connections={self.connections!r}"
        if self.parametrization != "gates":
            extra += f", parametrization={self.parametrization!r}"
        if self.grad_factor != 1.0:
            extra += f", grad_factor={self.grad_factor:g}"
        return f"{self.in_dim}, {self.out_dim}, implementation={self.implementation!r}{extra}"


def check_indices(a: torch.Tensor, b: torch.Tensor, in_dim: int, out_dim: int) -> None:
    """Raise ValueError unless ``a`` and ``b`` are int64 [out_dim] with values in 0..in_dim-1."""
    for name, t in (("a", a), ("b", b)):
        if t.dtype != torch.int64 or t.shape != (out_dim,):
            raise ValueError(f"operand indices {name} must be int64 [{out_dim}], got {t.dtype} {list(t.shape)}")
        if out_dim and (int(t.min()) < 0 or int(t.max()) >= in_dim):
            raise ValueError(f"operand indices {name} must lie in 0..{in_dim - 1}, "
                             f"got values in {int(t.min())}..{int(t.max())}")


class GroupSum(nn.Module):
    """Class scores: the sum of each of ``k`` contiguous equal groups of the input, divided by ``tau``
    (difflogic's ``GroupSum``, Petersen et al., NeurIPS 2022). Raises ValueError for ``k < 1``, a
    ``tau`` that is not finite and positive, or an input width not divisible by ``k``.

    ``[..., n]`` -> ``[..., k]``; ``n`` must be a multiple of ``k``. In eval mode on a hard circuit the
    score times ``tau`` is the group's popcount, which is what a lowered circuit's head returns.
    """

    def __init__(self, k: int, tau: float = 1.0, device: Any = "cpu"):
        super().__init__()
        if int(k) != k or k < 1:
            raise ValueError(f"GroupSum needs k >= 1 classes, got {k!r}")
        if not (float(tau) > 0 and float(tau) < float("inf")):
            raise ValueError(f"GroupSum needs a finite tau > 0, got {tau!r}")
        self.k, self.tau, self.device = int(k), float(tau), device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) and hasattr(x, "group_sum"):
            return x.group_sum(self)  # a PackBitsTensor runs the queued layers as a compiled circuit
        if x.dim() < 1 or x.shape[-1] % self.k:
            raise ValueError(f"GroupSum(k={self.k}) needs a last dimension divisible by {self.k}, got {list(x.shape)}")
        n = x.shape[-1]
        if x.dim() == 2 and x.stride(0) == 1 and x.shape[0] > 1:
            # feature-major (a kernel layer's output): reduce contiguous rows, not strided columns
            fused = kernels.feature_major_group_sum(x, self.k, self.tau) if x.requires_grad else None
            if fused is not None:
                return fused
            return x.t().reshape(self.k, n // self.k, x.shape[0]).sum(1).t() / self.tau
        return x.unflatten(-1, (self.k, n // self.k)).sum(-1) / self.tau

    def extra_repr(self) -> str:
        return f"k={self.k}, tau={self.tau:g}"


# -- how these modules lower and round-trip through a checkpoint config (lgc.frontend.walk) ----------
_LOGIC_KEYS = ("out_dim", "connections", "grad_factor", "residual_init", "parametrization")


@module_kind(LogicLayer, "logic")
class LogicLayerKind(ModuleKind):
    """``[in_dim] -> [out_dim]``; gate ``i`` is ``argmax(weights[i])`` on ``x[a[i]], x[b[i]]``."""

    def output_shape(self, m: LogicLayer, shape: Shape) -> Shape:
        if len(shape) != 1:   # [C, H, W] activations: PyTorch would apply the layer per row, not intended here
            raise ValueError(f"a LogicLayer needs flat values [{m.in_dim}] (a flatten entry / nn.Flatten first), "
                             f"got shape {list(shape)}")
        if shape[0] != m.in_dim:
            raise ValueError(f"LogicLayer has in_dim {m.in_dim} but its input has {shape[0]} values")
        return (m.out_dim,)

    def input_shape(self, m: LogicLayer) -> Shape:
        return (m.in_dim,)

    def lower(self, m: LogicLayer, builder: Any, nodes: np.ndarray) -> np.ndarray:
        a, b = (t.detach().cpu() for t in m.indices)
        check_indices(a, b, m.in_dim, m.out_dim)
        ops = hard_ops(m.weights).cpu().numpy().astype(np.uint8)   # argmax, lowest index on ties
        return builder.gates(ops, nodes[a.numpy()], nodes[b.numpy()])

    def config(self, m: LogicLayer) -> dict[str, Any]:
        return {"out_dim": m.out_dim, "connections": m.connections, "grad_factor": m.grad_factor,
                "residual_init": m.residual_init, "parametrization": m.parametrization}

    def model_defaults(self, m: LogicLayer) -> dict[str, Any]:
        return {"implementation": m.implementation, "dtype": str(m.weights.dtype).replace("torch.", "")}

    def build(self, spec: Any, shape: Shape, ctx: BuildContext) -> LogicLayer:
        if isinstance(spec, Mapping):
            spec = check_keys(spec, _LOGIC_KEYS, "logic layer")
            if "out_dim" not in spec:
                raise ValueError(f"a logic layer needs out_dim (and only {_LOGIC_KEYS}), got {dict(spec)}")
        else:
            spec = {"out_dim": spec}
        cfg = ctx.config
        if len(shape) != 1:
            raise ValueError(f"a LogicLayer after {list(shape)} activations needs a flatten entry first")
        return LogicLayer(shape[0], int(spec["out_dim"]), device=ctx.device,
                          grad_factor=float(spec.get("grad_factor", cfg.get("grad_factor", 1.0))),
                          implementation=ctx.implementation or cfg.get("implementation", "auto"),
                          connections=spec.get("connections", cfg.get("connections", "random")),
                          residual_init=spec.get("residual_init", cfg.get("residual_init", False)),
                          parametrization=spec.get("parametrization", cfg.get("parametrization", "gates")))


@module_kind(GroupSum, "group_sum", role="head")
class GroupSumKind(ModuleKind):
    """``[n] -> [k]`` class scores; lowers to the circuit's :class:`lgc.ir.GroupSumHead` (no gates)."""

    def output_shape(self, m: GroupSum, shape: Shape) -> Shape:
        if len(shape) != 1:
            raise ValueError(f"GroupSum needs flat values (a Flatten first), got shape {list(shape)}")
        if shape[0] % m.k:
            raise ValueError(f"the last layer's {shape[0]} outputs cannot be split into GroupSum(k={m.k}) equal groups")
        return (m.k,)

    def lower(self, m: GroupSum, builder: Any, nodes: np.ndarray) -> np.ndarray:
        builder.head = GroupSumHead(m.k, m.tau)
        return nodes

    def config(self, m: GroupSum) -> dict[str, Any]:
        return {"k": m.k, "tau": m.tau}

    def build(self, spec: Mapping[str, Any], shape: Shape, ctx: BuildContext) -> GroupSum:
        return GroupSum(int(spec["k"]), float(spec.get("tau", 1.0)), device=ctx.device)
