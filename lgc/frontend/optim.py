"""Adam on the fused CPU kernels' thread pool.

:class:`Adam` is ``torch.optim.Adam`` (same arguments, same ``state_dict``, so a run resumes across
the two) whose step, for CPU float32/float64 parameters with plain Adam's settings (no amsgrad,
weight decay, maximize, capturable or differentiable; a float learning rate), runs as one pass over
every parameter, its gradient and both moments on the kernels' pool (``kernels.get_num_threads()``
threads; ``logic_layer_cpu.h`` ``adam_update``) once a fused CPU layer has loaded the kernel in this
process; it never starts a build, so a ``python``-implementation run keeps torch's step, as does any
other parameter group. torch's own fused CPU Adam runs on torch's threads, which a fused-kernel
training step keeps at one (benchmarks/RESULTS.md, Training), so there it is serial. Results agree
with ``torch.optim.Adam`` to float rounding (tests/test_frontend_kernels.py).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from . import kernels


class Adam(torch.optim.Adam):
    """``torch.optim.Adam`` whose plain CPU step runs on the fused kernels' pool (module docstring)."""

    def _pooled(self, group: dict[str, Any]) -> bool:
        """Whether the pool step implements this group: plain Adam's settings, and every parameter,
        gradient and moment a dense contiguous CPU float32/float64 tensor of the parameter's dtype."""
        def like(p: torch.Tensor, t: Any) -> bool:
            return (isinstance(t, torch.Tensor) and not t.is_sparse and t.device == p.device and t.dtype == p.dtype
                    and t.is_contiguous() and t.shape == p.shape)

        def ready(p: torch.Tensor) -> bool:
            if p.device.type != "cpu" or p.dtype not in (torch.float32, torch.float64) or not p.is_contiguous():
                return False
            state = self.state.get(p, {})
            return ((p.grad is None or like(p, p.grad))
                    and (not state or (like(p, state.get("exp_avg")) and like(p, state.get("exp_avg_sq"))
                                       and isinstance(state.get("step"), torch.Tensor))))

        return self.plain_settings(group) and all(ready(p) for p in group["params"])

    @staticmethod
    def plain_settings(group: dict[str, Any]) -> bool:
        """Whether a parameter group asks for plain Adam: no amsgrad, weight decay, maximize, capturable
        or differentiable, a float learning rate and betas (what the pool step and the fused training
        step implement)."""
        return (not group["amsgrad"] and group["weight_decay"] == 0 and not group["maximize"]
                and not group.get("capturable", False) and not group.get("differentiable", False)
                and not isinstance(group["lr"], torch.Tensor)
                and not any(isinstance(b, torch.Tensor) for b in group["betas"]))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        backend = kernels.loaded_cpu_backend()
        if backend is None or not all(self._pooled(g) for g in self.param_groups):
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        module = backend.module
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            # parameters sharing a step count take one bias correction (torch's rule, per parameter)
            batches: dict[float, list[list[torch.Tensor]]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:  # torch's layout: a float32 scalar step and zero moments
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                lists = batches.setdefault(float(state["step"]), [[], [], [], []])
                for lst, t in zip(lists, (p, p.grad, state["exp_avg"], state["exp_avg_sq"])):
                    lst.append(t)
            for step, (params, grads, exp_avgs, exp_avg_sqs) in batches.items():
                bias1 = 1 - beta1 ** step
                bias2_sqrt = math.sqrt(1 - beta2 ** step)
                module.adam_step(params, grads, exp_avgs, exp_avg_sqs, float(beta1), float(beta2),
                                 float(group["eps"]), float(group["lr"]) / bias1, bias2_sqrt,
                                 kernels.get_num_threads())
        return loss
