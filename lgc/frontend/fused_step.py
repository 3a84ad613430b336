"""One training step of a logic network in one fused CPU call: forward, cross-entropy, backward, Adam.

:class:`FusedTrainStep` ``(model, optimizer)(x, y)`` is the step ``lgc train`` takes::

    optimizer.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()

for a model made of parameter-free input modules (``Flatten``, ``Binarize``), a run of two or more
``LogicLayer``\\ s that the fused stack would train (:mod:`.stack`) and a ``GroupSum``, with
:class:`lgc.frontend.optim.Adam` on its pool, in one extension call (``stack_train_step``): the
stack's forward, the cross-entropy of the ``[batch, k]`` scores and its gradient, then the stack's
backward with Adam's step applied to each gate's logits in the pass that makes their gradients
(which never go to memory; no autograd graph is built). The generic step's Python, autograd and
torch-op work (~1 ms of a ~10 ms step at 6 x 8000, batch 100, with the caches cold after the
kernels) stays serial however many threads the kernels have; this is what the fused step removes
(benchmarks/RESULTS.md, Training).

The result is the generic step's up to float rounding: the same kernels on the same values, except
that the loss and its gradient are computed in double from the float scores (torch computes them
in the scores' dtype); tests/test_fused_step.py compares parameters, moments and losses after
several steps at 1 and 2 threads. The parameters' ``.grad`` stay ``None`` (the gradients are not
kept). Where the fused step does not apply (:meth:`FusedTrainStep.unsupported` says why: another
architecture, a CUDA tensor, hooks, a relaxation the kernel lacks, another optimiser or Adam
setting, a target outside ``0 .. k-1`` such as cross_entropy's ignore_index), the call takes the
generic step above, so the object can stand in for it anywhere.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import kernels
from .layers import GroupSum, LogicLayer
from .optim import Adam
from .relax import relax_matrix
from .stack import _plain, check_shapes, fused_operands


class FusedTrainStep:
    """``step = FusedTrainStep(model, optimizer)``; ``loss = step(x, y)`` trains one step on the batch
    ``x`` (what ``model`` takes) with class indices ``y`` (int64 ``[batch]``) and returns the mean
    cross-entropy (a detached 0-dim tensor): the generic step in the module docstring, fused where it
    applies. Raises what ``model``, ``cross_entropy`` or the optimiser raise on bad input."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.optimizer = model, optimizer
        self.fused_steps = 0  # steps taken by the fused path (the rest took the generic step)
        self._cached: tuple | None = None  # (key, _find_structure()), see _structure

    # -- applicability ---------------------------------------------------------------------------
    def _structure(self) -> tuple | str:
        """(input modules, logic layers, head, Adam's parameter group of their logits, the model's other
        parameters), or why the model and optimiser are not that shape; cached while the model's
        children and the optimiser's parameter lists stay the same objects."""
        model, opt = self.model, self.optimizer
        key = (tuple(model.children()) if isinstance(model, nn.Module) else model,
               tuple(tuple(g["params"]) for g in opt.param_groups))
        cached = self._cached
        if cached is None or len(cached[0][0]) != len(key[0]) or any(
                u is not v for u, v in zip(cached[0][0], key[0])) or cached[0][1] != key[1]:
            self._cached = cached = (key, self._find_structure())
        return cached[1]

    def _find_structure(self) -> tuple | str:
        model, opt = self.model, self.optimizer
        if not isinstance(model, nn.Sequential):
            return "the model is not an nn.Sequential"
        mods = list(model)
        if not mods or type(mods[-1]) is not GroupSum:
            return "the model does not end in a GroupSum"
        j = len(mods) - 1
        while j > 0 and type(mods[j - 1]) is LogicLayer:
            j -= 1
        layers = mods[j:-1]
        if len(layers) < 2:
            return "the GroupSum does not follow two or more LogicLayers"
        if type(opt) is not Adam:
            return "the optimizer is not lgc.frontend.optim.Adam"
        weights = {id(m.weights) for m in layers}
        groups = [g for g in opt.param_groups if any(id(p) in weights for p in g["params"])]
        if len(groups) != 1 or not weights <= {id(p) for p in groups[0]["params"]}:
            return "the logic layers' logits are not all in one Adam parameter group"
        others = [p for p in model.parameters() if id(p) not in weights]
        return mods[:j], layers, mods[-1], groups[0], others

    def _plan(self, x: Any, y: Any) -> tuple | str:
        """(input modules, head, Adam's parameter group, and per logic layer its logits, wiring and
        grad_factor) for the fused step on (x, y), or why it does not apply (the step also takes the
        generic path when a target is not a class index, which the extension finds)."""
        parts = self._structure()
        if isinstance(parts, str):
            return parts
        prefix, layers, head, group, others = parts
        if any(p.requires_grad for p in others):
            return "the model trains parameters other than the logic layers' logits"
        if not (_plain(self.model) and _plain(head)):
            return "the model or its GroupSum has hooks"
        if not isinstance(x, torch.Tensor) or x.device.type != "cpu" or x.requires_grad:
            return "x is not a CPU tensor without requires_grad"
        if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.dim() != 1 or y.device.type != "cpu":
            return "y is not an int64 CPU vector of class indices"
        dtype = layers[0].weights.dtype
        weights, index_a, index_b, grad_factors = [], [], [], []
        for m in layers:
            operands = fused_operands(m, dtype)
            if operands is None or not operands[0].requires_grad:
                return ("a logic layer does not train with the fused kernel (mode, relaxation, implementation, "
                        "dtype, hooks)")
            weights.append(operands[0])
            index_a.append(operands[1])
            index_b.append(operands[2])
            grad_factors.append(float(m.grad_factor))
        if not all(m.training for m in prefix):
            return "an input module is in eval mode"
        if kernels.loaded_cpu_backend() is None and kernels.resolve(layers[0].implementation,
                                                                    torch.empty(0, dtype=dtype)).name != "cpu":
            return "the fused CPU kernel is not available"
        if not Adam.plain_settings(group):
            return "an Adam setting the fused step lacks (amsgrad, weight decay, maximize, tensor lr or betas, ...)"
        return prefix, layers, head, group, weights, index_a, index_b, grad_factors

    def unsupported(self, x: Any, y: Any) -> str | None:
        """Why ``self(x, y)`` would take the generic step, or None when it takes the fused one (or the
        generic one, when a target is not a class index)."""
        plan = self._plan(x, y)
        return plan if isinstance(plan, str) else None

    # -- the step ----------------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        plan = self._plan(x, y)
        if isinstance(plan, str):
            return self._generic(x, y)
        prefix, layers, head, group, weights, index_a, index_b, grad_factors = plan
        h = x
        if prefix:
            with torch.no_grad():
                for m in prefix:
                    h = m(h)
        if (not isinstance(h, torch.Tensor) or h.dim() != 2 or h.dtype != weights[0].dtype
                or h.shape[0] != y.shape[0] or h.shape[0] == 0):
            return self._generic(x, y)  # the generic step handles, or rejects, such a batch
        check_shapes(layers, h, head)
        # Adam's state as lgc.frontend.optim.Adam.step makes it on the first step (the extension counts
        # the steps and takes the bias corrections as torch does)
        state = self.optimizer.state
        states = []
        for w in weights:
            s = state[w]
            if not s:
                s.update(step=torch.tensor(0.0, dtype=torch.float32),
                         exp_avg=torch.zeros_like(w, memory_format=torch.preserve_format),
                         exp_avg_sq=torch.zeros_like(w, memory_format=torch.preserve_format))
            states.append(s)
        beta1, beta2 = group["betas"]
        # the logits go in as they are (the extension updates them in place; autograd is not involved)
        loss = kernels.loaded_cpu_backend().module.stack_train_step(
            h, weights, index_a, index_b, relax_matrix(weights[0]), head.k, float(head.tau), y, grad_factors,
            [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [s["step"] for s in states],
            float(group["lr"]), float(beta1), float(beta2), float(group["eps"]), kernels.get_num_threads())
        if loss is None:  # a target is not a class index (cross_entropy's rules apply), or the layers'
            return self._generic(x, y)  # Adam states are at different steps (loaded so): nothing was changed
        for w in weights:
            w.grad = None
        self.fused_steps += 1
        return loss

    def _generic(self, x: Any, y: Any) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return loss.detach()
