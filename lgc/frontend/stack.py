"""A run of ``LogicLayer``s trained as one fused CPU call per step and direction.

:class:`LogicSequential` is ``nn.Sequential`` (same children, same ``state_dict`` keys, the
parameters stay each layer's own ``weights``) whose forward hands every run of two or more
consecutive :class:`~lgc.frontend.layers.LogicLayer`\\ s that the fused CPU kernel would run with the
softmax relaxation (training mode, ``gates`` parametrization, temperature 1, implementation
``cpu`` or ``auto``, a CPU float32/float64 ``[batch, in_dim]`` input of the weights' dtype) to
:class:`_LogicStack`: the softmax of every layer and the forward of the whole run (and of a
GroupSum right after it) in one extension call, the backward of the whole run and every softmax
backward in one more (``logic_stack_cpu.h``: up to batch 192 two threads own a half of the batch
columns each through the whole backward, with no barrier between layers; above, the per-layer
gather on all threads). Everything else (eval mode, other relaxations, conv layers, CUDA, an
unbuilt kernel) runs module by module, as in ``nn.Sequential``. ``build_model`` and
``logic_tree_net`` return one for a model with such a run (:func:`sequential`). ``lgc train`` goes
one step further where the loss is plain cross-entropy and the optimiser lgc's Adam: the whole
step in one call (:mod:`.fused_step`).

The gradients are the per-layer kernel's up to float rounding (up to batch 192 the coefficient
gradients add the batch in two column blocks fixed by the batch, then the blocks in order: the same
bits at any thread count; above, the per-layer kernel's bits). Measurements: benchmarks/RESULTS.md,
Training.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import kernels
from .layers import GroupSum, LogicLayer
from .relax import relax_matrix


#: the stack backward's formulation: 0 the scatter up to batch 192 and the gather above (the
#: extension's kScatterMaxBatch), 1 always the scatter, 2 always the gather (for measurements)
FORMULATION = 0


class _LogicStack(torch.autograd.Function):
    """``x [batch, in]`` and the layers' logits -> the last layer's output ``[batch, out]`` (the
    transpose of a padded feature-major ``[out, stride]`` buffer, which the fused GroupSum reads), or
    with ``head = (k, tau)`` that output's GroupSum scores ``[batch, k]`` (the values of
    ``GroupSum(k, tau)`` after a kernel layer; the backward reads the scores' gradient per group
    instead of broadcasting it into ``[out, batch]`` rows)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, backend: Any, wiring: tuple, grad_factors: tuple, head: tuple | None,
                *weights: torch.Tensor) -> torch.Tensor:
        a, b = [w[0] for w in wiring], [w[1] for w in wiring]
        ws = [w.detach().contiguous() for w in weights]
        out = backend.module.stack_forward(x.detach(), ws, a, b, relax_matrix(ws[0]), head[0] if head else 0,
                                           kernels.get_num_threads())
        n = len(ws)
        acts, cs, probs = out[:n + 1], out[n + 1:2 * n + 1], out[2 * n + 1:]
        ctx.save_for_backward(*acts[:n], *cs, *probs)
        ctx.n, ctx.backend, ctx.a, ctx.b, ctx.grad_factors = n, backend, a, b, list(grad_factors)
        ctx.batch, ctx.head, ctx.out_dim = x.shape[0], head, ws[-1].shape[0]
        if head is None:
            return acts[n][:, :x.shape[0]].t()
        return acts[n].t() / head[1]  # the group sums [k, batch], in gate order

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_y: torch.Tensor):
        saved = ctx.saved_tensors
        n = ctx.n
        acts, cs, probs = list(saved[:n]), list(saved[n:2 * n]), list(saved[2 * n:])
        need_gx = ctx.needs_input_grad[0]
        group = 1
        if ctx.head is not None:
            k, tau = ctx.head
            grad_y, group = grad_y / tau, ctx.out_dim // k  # the rows GroupSum's backward would broadcast
        out = ctx.backend.module.stack_backward(acts, ctx.a, ctx.b, cs, probs, relax_matrix(probs[0]), grad_y, group,
                                                ctx.grad_factors, need_gx, kernels.get_num_threads(), FORMULATION)
        grad_w = [g if ctx.needs_input_grad[5 + l] else None for l, g in enumerate(out[:n])]
        gx = out[n][:, :ctx.batch].t() if need_gx else None
        return (gx, None, None, None, None, *grad_w)


def fused_operands(layer: nn.Module, dtype: torch.dtype) -> tuple | None:
    """``(weights, index_a, index_b)`` of ``layer`` when it runs the fused CPU kernel with the plain
    softmax relaxation on an input of ``dtype`` (training mode, ``gates``, ``cpu`` or ``auto``, CPU
    logits of ``dtype``, no hooks), else None. Reads the module's dicts directly: it runs every step."""
    if type(layer) is not LogicLayer or not layer.training:
        return None
    w, a, b = layer._parameters.get("weights"), layer._buffers.get("index_a"), layer._buffers.get("index_b")
    if (w is None or a is None or b is None or layer.parametrization != "gates"
            or layer.implementation not in ("cpu", "auto")
            or getattr(layer, "relaxation", ("softmax", 1.0)) != ("softmax", 1.0)
            or w.dtype != dtype or w.device.type != "cpu" or not _plain(layer)):
        return None
    return w, a, b


def _fusable(layer: nn.Module, dtype: torch.dtype) -> bool:
    """Whether ``layer`` runs the fused CPU kernel with the plain softmax relaxation on an input of ``dtype``."""
    return fused_operands(layer, dtype) is not None


def _plain(m: nn.Module) -> bool:
    return not m._forward_hooks and not m._forward_pre_hooks  # hooks must see each module's own call


def check_shapes(layers: list[LogicLayer], x: torch.Tensor, head: GroupSum | None) -> None:
    """Raise ValueError unless ``x [batch, in]`` feeds ``layers`` in turn (and their width splits into
    ``head``'s groups), as the layers themselves would when run one by one."""
    for m, prev in zip(layers, [x.shape[1]] + [m.out_dim for m in layers]):
        if m.in_dim != prev:
            raise ValueError(f"LogicLayer({m.in_dim}, {m.out_dim}) expects input [..., {m.in_dim}], got {prev} values")
    if head is not None and layers[-1].out_dim % head.k:
        raise ValueError(f"GroupSum(k={head.k}) needs a last dimension divisible by {head.k}, "
                         f"got {[x.shape[0], layers[-1].out_dim]}")


def logic_stack(layers: list[LogicLayer], x: torch.Tensor, head: GroupSum | None = None) -> torch.Tensor | None:
    """``layers`` applied in turn to ``x [batch, in]`` in one fused call per direction (then ``head``,
    a GroupSum, if given), or None when the fused kernel does not apply (then run them one by one).
    Raises what ``kernels.resolve`` raises (``cpu`` without a kernel, a required one missing)."""
    if (not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] < 1 or x.device.type != "cpu"
            or x.dtype not in (torch.float32, torch.float64) or len(layers) < 2
            or not all(_fusable(m, x.dtype) for m in layers)):
        return None
    backend = kernels.loaded_cpu_backend()
    if backend is None:  # not loaded yet: resolve builds or loads it (cpu), or falls back (auto)
        if any(kernels.resolve(impl, x).name != "cpu" for impl in {m.implementation for m in layers}):
            return None  # auto without a kernel: the per-layer fallback (and its one warning)
        backend = kernels.loaded_cpu_backend()
    check_shapes(layers, x, head)
    wiring = tuple((m.index_a, m.index_b) for m in layers)
    fused_head = None if head is None else (head.k, head.tau)
    return _LogicStack.apply(x, backend, wiring, tuple(m.grad_factor for m in layers), fused_head,
                             *(m.weights for m in layers))


class LogicSequential(nn.Sequential):
    """``nn.Sequential`` that runs each run of fusable ``LogicLayer``\\ s as one fused CPU stack
    (module docstring); otherwise, and in every other respect, ``nn.Sequential``."""

    def forward(self, x: Any) -> Any:
        mods = list(self)
        i = 0
        while i < len(mods):
            j = i
            while j < len(mods) and type(mods[j]) is LogicLayer:
                j += 1
            head = mods[j] if j < len(mods) and type(mods[j]) is GroupSum and _plain(mods[j]) else None
            y = logic_stack(mods[i:j], x, head) if j - i >= 2 else None
            if y is not None:
                x = y
                j += head is not None
            else:
                for m in mods[i:max(j, i + 1)]:
                    x = m(x)
            i = max(j, i + 1)
        return x


def sequential(*modules: nn.Module) -> nn.Sequential:
    """``LogicSequential(*modules)`` when two LogicLayers follow each other (a run to fuse), else
    ``nn.Sequential(*modules)``: what lgc's model builders return."""
    fusable = any(type(m) is LogicLayer and type(n) is LogicLayer for m, n in zip(modules, modules[1:]))
    return (LogicSequential if fusable else nn.Sequential)(*modules)
