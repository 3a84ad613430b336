"""Levels: the one definition of a gate's depth and of which gates may run together.

Primary inputs are level 0; a gate is one more than the deepest operand it uses (an ignored
operand is not a use, so a constant gate is level 1). Computed by whole-array relaxation:
each sweep is O(gates) numpy work and the number of sweeps is the depth plus one.
"""
from __future__ import annotations

import numpy as np

from . import ops as _ops
from .circuit import Circuit


def used_operands(circuit: Circuit) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks [G]: does gate i use operand a, operand b?"""
    return ~_ops.IGNORES_A[circuit.op], ~_ops.IGNORES_B[circuit.op]


def levels(circuit: Circuit) -> np.ndarray:
    """int32[G]: the level of every gate (inputs are level 0)."""
    circuit.validate()
    n, g = circuit.num_inputs, circuit.num_gates
    if g == 0:
        return np.zeros(0, dtype=np.int32)
    use_a, use_b = used_operands(circuit)
    a = np.where(use_a, circuit.a, -1)
    b = np.where(use_b, circuit.b, -1)
    node_level = np.zeros(n + g + 1, dtype=np.int32)  # slot -1 (the last) stands for "no operand"
    node_level[n:n + g] = 1
    gate_level = node_level[n:n + g]
    # Only gates that read another gate can be deeper than 1; sweep those until nothing moves.
    active = np.flatnonzero((a >= n) | (b >= n))
    a, b = a[active], b[active]
    while active.size:
        new = np.maximum(node_level[a], node_level[b]) + 1
        moved = new != gate_level[active]
        if not moved.any():
            break
        gate_level[active[moved]] = new[moved]
    return gate_level.copy()


def depth(circuit: Circuit) -> int:
    """The deepest gate's level (0 for a circuit without gates)."""
    lv = levels(circuit)
    return int(lv.max()) if lv.size else 0


def level_order(circuit: Circuit) -> tuple[np.ndarray, np.ndarray]:
    """Gate indices sorted by level (stable), and boundaries: level L's gates are
    ``order[bounds[L-1]:bounds[L]]`` for L = 1..depth."""
    lv = levels(circuit)
    order = np.argsort(lv, kind="stable").astype(np.int64)
    bounds = np.searchsorted(lv[order], np.arange(1, (lv.max() if lv.size else 0) + 1), side="right")
    return order, np.concatenate([[0], bounds]).astype(np.int64)
