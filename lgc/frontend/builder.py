"""``CircuitBuilder``: appends gates to a circuit under construction in whole numpy arrays.

A lowering handler (:mod:`lgc.frontend.walk`) receives the builder and an integer array of node
ids shaped like the module's input activation, and returns its output's node ids. Cost: O(gates)
numpy work; gates are stored as array chunks, concatenated once by :meth:`CircuitBuilder.arrays`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from lgc.ir import GroupSumHead, InputEncoder
from lgc.ir import ops as _ops


class CircuitBuilder:
    """Gates appended in whole arrays; hands back their node ids (same shape as the operands).

    ``num_inputs`` primary inputs are nodes ``0 .. num_inputs - 1``; gate ``i`` is node
    ``num_inputs + i``. Handlers may set ``head`` (a :class:`lgc.ir.GroupSumHead`) and
    ``input_encoder``; ``bounds`` collects layer boundaries (gate indices) for ``Circuit.layers``.
    """

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
        self.head: GroupSumHead | None = None
        self.input_encoder: InputEncoder | None = None

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

    def end_layer(self) -> bool:
        """Close a layer boundary; True when gates were added since the last one."""
        if self.num_gates != self.bounds[-1]:
            self.bounds.append(self.num_gates)
            return True
        return False

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(op uint8[G], a int32[G], b int32[G])`` of every gate added so far."""
        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
        return cat(self._op, np.uint8), cat(self._a, np.int32), cat(self._b, np.int32)
