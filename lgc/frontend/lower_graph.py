"""Lowering models whose activations have a shape (convolutional logic networks) to the gate IR.

Each activation is an integer numpy array of node ids shaped like the module's output without the
batch axis (``[C, H, W]`` after a convolution, ``[F]`` after a Flatten). A module lowers itself by
``module._lower(builder, nodes) -> nodes`` (:class:`~lgc.frontend.conv.LogicConv2d`,
:class:`~lgc.frontend.conv.OrPool2d`); ``Flatten``/``Unflatten``/``Identity`` only reshape, a
leading ``Binarize`` becomes the input encoder, ``LogicLayer`` reads ``nodes[a]``, ``nodes[b]``,
and a final ``GroupSum`` becomes the head. Cost: O(gates) numpy work (one fancy-indexing step per
tree level), no forward pass; the model is read in eval semantics (argmax gates) and not changed.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from torch import nn

from lgc.ir import Circuit, GroupSumHead
from lgc.ir import ops as _ops

from .binarize import Binarize
from .layers import GroupSum, LogicLayer, check_indices
from .lower import _is_plain_flatten, _modules
from .relax import hard_ops

SUPPORTED = "Binarize (first), Flatten, Unflatten, Identity, LogicConv2d, OrPool2d, LogicLayer, GroupSum (last)"


class GraphBuilder:
    """Appends gates in whole arrays and hands back their node ids (same shape as the operands)."""

    def __init__(self, num_inputs: int):
        if num_inputs < 1:
            raise ValueError("lower: a circuit with gates needs at least one input")
        self.num_inputs = int(num_inputs)
        self._op: list[np.ndarray] = []
        self._a: list[np.ndarray] = []
        self._b: list[np.ndarray] = []
        self.num_gates = 0
        self._false: int | None = None
        self.bounds = [0]

    def gates(self, op: Any, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Add one gate per element of ``a``/``b`` (op broadcast); returns their node ids, shaped like ``a``."""
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        op = np.broadcast_to(np.asarray(op, dtype=np.uint8), a.shape)
        first = self.num_inputs + self.num_gates
        n = a.size
        self._op.append(op.reshape(-1).copy())
        self._a.append(a.reshape(-1).copy())
        self._b.append(b.reshape(-1).copy())
        self.num_gates += n
        return np.arange(first, first + n, dtype=np.int64).reshape(a.shape)

    def false(self) -> int:
        """The node id of a constant FALSE gate (op 0), created once."""
        if self._false is None:
            self._false = int(self.gates(_ops.FALSE, np.zeros(1), np.zeros(1))[0])
        return self._false

    def reduce(self, op: int, nodes: np.ndarray) -> np.ndarray:
        """Balanced tree of ``op`` (an associative gate such as OR) over the last axis of ``nodes``."""
        v = np.asarray(nodes, dtype=np.int64)
        if v.shape[-1] < 1:
            raise ValueError("lower: cannot reduce an empty window")
        while v.shape[-1] > 1:
            even = v.shape[-1] // 2 * 2
            out = self.gates(op, v[..., 0:even:2], v[..., 1:even:2])
            v = np.concatenate([out, v[..., even:]], axis=-1) if even < v.shape[-1] else out
        return v[..., 0]

    def end_layer(self) -> None:
        if self.num_gates != self.bounds[-1]:
            self.bounds.append(self.num_gates)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
        return cat(self._op, np.uint8), cat(self._a, np.int32), cat(self._b, np.int32)


def is_graph_module(m: nn.Module) -> bool:
    """True for modules only :func:`lower_graph` can lower (they have a ``_lower`` method)."""
    return callable(getattr(m, "_lower", None))


def needs_graph_lowering(model: Any) -> bool:
    try:
        return any(is_graph_module(m) for m in _modules(model))
    except TypeError:
        return False


def _input_shape(body: list[nn.Module], binarize: Binarize | None, input_shape: Sequence[int] | None
                 ) -> tuple[int, ...]:
    if input_shape is not None:
        return tuple(int(s) for s in input_shape)
    for m in body:
        if isinstance(m, nn.Flatten):
            continue
        if isinstance(m, nn.Unflatten):
            return (int(np.prod(tuple(m.unflattened_size))),)
        if isinstance(m, LogicLayer):
            return (m.in_dim,)
        if is_graph_module(m) and getattr(m, "input_size", None) is not None and binarize is None:
            return (int(m.in_channels), *m.input_size)
        break
    if binarize is not None and binarize.num_features is not None and not body:
        return (binarize.num_thresholds * binarize.num_features,)
    raise ValueError("lower: cannot tell the model's input shape; give the first LogicConv2d input_size=(H, W), "
                     "start with nn.Unflatten(1, (C, H, W)) (after a Binarize), or call "
                     "lgc.frontend.lower_graph(model, input_shape=(C, H, W))")


def lower_graph(model: nn.Module, input_shape: Sequence[int] | None = None) -> Circuit:
    """The circuit of a model of shaped activations (see the module docstring).

    ``input_shape``: the shape of one sample as the first non-Binarize module sees it, without the
    batch (``(C, H, W)``); inferred from a leading ``Binarize(num_features=...)`` + ``Unflatten``
    or from the first ``LogicConv2d``'s ``input_size`` when omitted.
    """
    mods = [m for m in _modules(model) if not isinstance(m, nn.Identity)]
    while mods and _is_plain_flatten(mods[0]):
        mods = mods[1:]  # samples are lowered as flat bit vectors already: a leading Flatten is a no-op
    binarize = mods[0] if mods and isinstance(mods[0], Binarize) else None
    body = mods[1:] if binarize is not None else mods
    shape = _input_shape(body, binarize, input_shape)
    num_inputs = int(np.prod(shape))
    encoder = None
    if binarize is not None:
        t = binarize.num_thresholds
        if num_inputs % t:
            raise ValueError(f"lower: the model reads {num_inputs} bits, not a multiple of the Binarize's {t} thresholds")
        if binarize.num_features is not None and binarize.num_features * t != num_inputs:
            raise ValueError(f"lower: Binarize emits {t * binarize.num_features} bits but the model reads {num_inputs}")
        encoder = binarize.encoder(num_inputs // t)
    builder = GraphBuilder(num_inputs)
    nodes = np.arange(num_inputs, dtype=np.int64).reshape(shape)
    head: GroupSum | None = None
    sizes: list[int] = []
    for pos, m in enumerate(body):
        where = f"module {pos} ({type(m).__name__})"
        if head is not None:
            raise ValueError(f"lower: {where} follows the GroupSum; GroupSum must be the last module")
        if isinstance(m, nn.Flatten):
            if m.end_dim != -1 or m.start_dim != 1:
                raise ValueError(f"lower: {where}: only Flatten(start_dim=1, end_dim=-1) is supported")
            nodes = nodes.reshape(-1)
        elif isinstance(m, nn.Unflatten):
            if m.dim != 1 or nodes.ndim != 1:
                raise ValueError(f"lower: {where}: only Unflatten(1, sizes) of a flat activation is supported")
            nodes = nodes.reshape(tuple(m.unflattened_size))
        elif isinstance(m, Binarize):
            raise ValueError(f"lower: {where}: a Binarize may only come first")
        elif isinstance(m, LogicLayer):
            flat = nodes.reshape(-1)
            if flat.size != m.in_dim:
                raise ValueError(f"lower: {where} has in_dim {m.in_dim} but its input has {flat.size} bits "
                                 f"(shape {list(nodes.shape)})")
            a, b = (t.detach().cpu() for t in m.indices)
            check_indices(a, b, m.in_dim, m.out_dim)
            nodes = builder.gates(hard_ops(m.weights).cpu().numpy(), flat[a.numpy()], flat[b.numpy()])
        elif is_graph_module(m):
            nodes = m._lower(builder, nodes)
        elif isinstance(m, GroupSum):
            head = m
            continue
        else:
            raise ValueError(f"lower: unsupported module {pos}: {type(m).__name__} ({m!r}); lowerable: {SUPPORTED}")
        builder.end_layer()
        sizes.append(int(nodes.size))
    outputs = nodes.reshape(-1)
    circuit_head = None
    if head is not None:
        if outputs.size % head.k:
            raise ValueError(f"lower: {outputs.size} outputs cannot be split into GroupSum(k={head.k}) equal groups")
        circuit_head = GroupSumHead(head.k, head.tau)
    op, a, b = builder.arrays()
    meta = {"frontend": "lgc.frontend.lower_graph", "input_shape": [int(s) for s in shape],
            "activation_sizes": sizes, "num_inputs": num_inputs}
    if binarize is not None:
        meta["num_thresholds"] = binarize.num_thresholds
    return Circuit(num_inputs, op, a, b, outputs, head=circuit_head, input_encoder=encoder,
                   layers=np.asarray(builder.bounds, dtype=np.int64), meta=meta).validate()
