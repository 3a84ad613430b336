"""Structural hashing (common-subexpression elimination) with a canonical operand order.

Every gate is first put in canonical form: operands ordered a <= b (swapping them transposes the
truth table, ``SWAP[op]``), a one-input gate reads a (B -> A, NOT_B -> NOT_A) with b = a, and a
constant reads input 0 twice; so commuted duplicates and gates that differ only in an ignored
operand get the same key (op, a, b). Duplicates always sit on the same level (their operands are
duplicates, by induction), so the levels are walked in order: each level maps its operands to
their representatives, re-canonicalises, and finds equal keys with one ``np.unique`` over packed
uint64 keys (a lexsort fallback beyond 2^30 nodes). The representative is the lowest-numbered
gate of its class, so topological order holds. Cost: one ``levels`` plus O(g log g) per level.
"""
from __future__ import annotations

import numpy as np

from lgc.ir import Circuit, level_order, ops as _ops

from ._rewrite import sweep

_ONE_ON_B = {_ops.B: _ops.A, _ops.NOT_B: _ops.NOT_A}
_B_TO_A = np.arange(_ops.NUM_OPS, dtype=np.uint8)
for _src, _dst in _ONE_ON_B.items():
    _B_TO_A[_src] = _dst


def canonical_form(op: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gates in canonical form (same functions): see the module docstring."""
    ign_a, ign_b = _ops.IGNORES_A[op], _ops.IGNORES_B[op]
    const = ign_a & ign_b
    only_b = ign_a & ~ign_b
    swap = (~ign_a & ~ign_b & (a > b)) | only_b
    op = np.where(swap, _ops.SWAP[op], op).astype(np.uint8)
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    one = _ops.IGNORES_B[op] & ~const                 # reads a only, now
    b = np.where(one, a, b)
    a = np.where(const, 0, a)
    b = np.where(const, 0, b)
    return op, a, b


def _first_of_class(op: np.ndarray, a: np.ndarray, b: np.ndarray, wide: bool) -> np.ndarray:
    """For each gate of a level, the position of the first gate with the same key."""
    if not wide:
        key = (op.astype(np.uint64) << np.uint64(60)) | (a.astype(np.uint64) << np.uint64(30)) | b.astype(np.uint64)
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        return first[inverse.reshape(-1)]
    order = np.lexsort((np.arange(op.size), b, a, op))
    so, sa, sb = op[order], a[order], b[order]
    start = np.ones(order.size, dtype=bool)
    start[1:] = (so[1:] != so[:-1]) | (sa[1:] != sa[:-1]) | (sb[1:] != sb[:-1])
    group_first = order[np.flatnonzero(start)]
    first = np.empty(order.size, dtype=np.int64)
    first[order] = group_first[np.cumsum(start) - 1]
    return first


def structural_hash(circuit: Circuit) -> Circuit:
    """Merge structurally equal gates, commuted ones included (see the module docstring)."""
    circuit.validate()
    n, total = circuit.num_inputs, circuit.num_nodes
    op, a, b = canonical_form(circuit.op, circuit.a.astype(np.int64), circuit.b.astype(np.int64))
    rep = np.arange(total, dtype=np.int64)
    order, bounds = level_order(circuit)
    wide = total >= (1 << 30)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        idx = order[lo:hi]  # ascending gate index within a level (stable sort)
        lop, la, lb = canonical_form(op[idx], rep[a[idx]], rep[b[idx]])
        op[idx], a[idx], b[idx] = lop, la, lb
        first = _first_of_class(lop, la, lb, wide)
        rep[n + idx] = n + idx[first]
    return sweep(circuit, op, a, b, rep[circuit.outputs])
