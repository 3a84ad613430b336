"""Lowering a trained model to the gate IR, and importing difflogic models.

``lower(model)`` reads the model's parameters only (O(gates) numpy work, no forward pass) and
builds the circuit that computes exactly what the model computes in eval mode: each gate is its
argmax gate (lowest index on ties), whatever mode the model is in (the model is not changed).
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from lgc.ir import Circuit, GroupSumHead

from .binarize import Binarize
from .layers import GroupSum, LogicLayer, check_indices
from .relax import hard_ops

SUPPORTED = "Flatten, Identity, Binarize, LogicLayer, GroupSum"


def _modules(model: Any) -> list[nn.Module]:
    if isinstance(model, nn.Sequential):
        out: list[nn.Module] = []
        for m in model:
            out.extend(_modules(m))
        return out
    if isinstance(model, nn.Module):
        return [model]
    raise TypeError(f"lower expects a torch.nn.Sequential of {SUPPORTED}, got {type(model).__name__}")


def _is_plain_flatten(m: nn.Module) -> bool:
    return isinstance(m, nn.Flatten) and m.start_dim == 1 and m.end_dim == -1


def lower(model: nn.Module) -> Circuit:
    """The circuit of ``model``: an ``nn.Sequential`` of optional Flatten/Binarize, LogicLayers and an
    optional final GroupSum (nested Sequentials are flattened).

    Gate ``i`` of layer ``L`` is gate ``offset_L + i`` with op ``argmax(weights[i])`` and operands the
    previous layer's nodes ``a[i]``, ``b[i]``; the outputs are the last layer's gates (or the inputs
    when there is no layer). A leading Binarize becomes the circuit's ``input_encoder``, a GroupSum
    its ``head``; ``layers`` holds the layer boundaries and ``meta`` the layer sizes.
    """
    from .lower_graph import lower_graph, needs_graph_lowering  # conv models: shaped activations
    if needs_graph_lowering(model):
        return lower_graph(model)
    mods = _modules(model)
    binarize: Binarize | None = None
    layers: list[LogicLayer] = []
    head: GroupSum | None = None
    for pos, m in enumerate(mods):
        where = f"module {pos} ({type(m).__name__})"
        if _is_plain_flatten(m) or isinstance(m, nn.Identity):
            continue
        if head is not None:
            raise ValueError(f"lower: {where} follows the GroupSum; GroupSum must be the last module")
        if isinstance(m, Binarize):
            if binarize is not None or layers:
                raise ValueError(f"lower: {where}: a Binarize may only come first, before any LogicLayer")
            binarize = m
        elif isinstance(m, LogicLayer):
            if layers and m.in_dim != layers[-1].out_dim:
                raise ValueError(f"lower: {where} has in_dim {m.in_dim} but the previous LogicLayer has "
                                 f"out_dim {layers[-1].out_dim}")
            layers.append(m)
        elif isinstance(m, GroupSum):
            head = m
        else:
            raise ValueError(f"lower: unsupported module {pos}: {type(m).__name__} ({m!r}); "
                             f"lowerable modules are {SUPPORTED}")
    if not layers and binarize is None:
        raise ValueError(f"lower: the model has no LogicLayer or Binarize, nothing to lower (modules: {SUPPORTED})")

    if layers:
        num_inputs = layers[0].in_dim
    else:
        if binarize is None or binarize.num_features is None:
            raise ValueError("lower: a model without LogicLayers needs a Binarize that knows its num_features")
        num_inputs = binarize.num_thresholds * binarize.num_features
    encoder = None
    if binarize is not None:
        t = binarize.num_thresholds
        if num_inputs % t:
            raise ValueError(f"lower: the first LogicLayer's in_dim {num_inputs} is not a multiple of the "
                             f"Binarize's {t} thresholds")
        features = num_inputs // t
        if binarize.num_features is not None and binarize.num_features != features:
            raise ValueError(f"lower: Binarize emits {t * binarize.num_features} bits but the first LogicLayer "
                             f"reads {num_inputs}")
        encoder = binarize.encoder(features)

    ops, a_all, b_all, bounds = [], [], [], [0]
    prev_base = 0          # node id of the previous layer's output 0 (inputs: 0)
    for layer in layers:
        a, b = (t.detach().cpu() for t in layer.indices)
        check_indices(a, b, layer.in_dim, layer.out_dim)
        ops.append(hard_ops(layer.weights).cpu().numpy().astype(np.uint8))
        a_all.append(a.numpy().astype(np.int64) + prev_base)
        b_all.append(b.numpy().astype(np.int64) + prev_base)
        prev_base = num_inputs + bounds[-1]
        bounds.append(bounds[-1] + layer.out_dim)
    width = layers[-1].out_dim if layers else num_inputs
    outputs = np.arange(prev_base, prev_base + width, dtype=np.int64)
    circuit_head = None
    if head is not None:
        if width % head.k:
            raise ValueError(f"lower: the last layer's {width} outputs cannot be split into GroupSum(k={head.k}) "
                             f"equal groups")
        circuit_head = GroupSumHead(head.k, head.tau)

    def cat(parts: Iterable[np.ndarray], dtype: Any) -> np.ndarray:
        parts = list(parts)
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    meta = {"frontend": "lgc.frontend.lower", "layer_sizes": [int(l.out_dim) for l in layers],
            "num_inputs": int(num_inputs)}
    if binarize is not None:
        meta["num_thresholds"] = binarize.num_thresholds
    return Circuit(num_inputs, cat(ops, np.uint8), cat(a_all, np.int32), cat(b_all, np.int32), outputs,
                   head=circuit_head, input_encoder=encoder, layers=np.asarray(bounds, dtype=np.int64),
                   meta=meta).validate()


# -- difflogic import ---------------------------------------------------------------------------
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
    Anything else raises ValueError naming it. The result is on the weights' device, keeps their
    dtype (so the argmax gates are the same), and is in the input model's train/eval mode.
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
