"""Complement-aware structural hashing: merge gates that compute the negation of one another.

``structural_hash`` merges equal gates; this heavier O3 pass also merges complements such as
AND/NAND, XOR/XNOR or OR/NOR over the same operands: each gate's key is taken with its output
normalised (a truth table with f(0, 0) = 1 is negated), so a gate and its complement share a
class. Consumers read the class representative (the lowest-numbered gate) and absorb the
negation into their truth table (``NEGATE_A``/``NEGATE_B``); an output reading a complemented
member reads the representative as a negated literal. Duplicates (and complements) sit on one level, as in
``structural_hash``, so levels are walked in order: one ``levels`` plus O(g log g) per level.
"""
from __future__ import annotations

import numpy as np

from lgc.ir import Circuit, level_order, ops as _ops

from ._rewrite import outputs_to_roots, sweep
from .structural_hash import _first_of_class, canonical_form


def merge_complements(circuit: Circuit) -> Circuit:
    """Merge structurally equal and structurally complementary gates. Function preserved exactly."""
    circuit.validate()
    n, total = circuit.num_inputs, circuit.num_nodes
    op = circuit.op.copy()
    a, b = circuit.a.astype(np.int64), circuit.b.astype(np.int64)
    root = np.arange(total, dtype=np.int64)
    parity = np.zeros(total, dtype=bool)  # node x computes root[x] XOR parity[x]
    order, bounds = level_order(circuit)
    wide = total >= (1 << 30)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        idx = order[lo:hi]
        la, lb, lop = a[idx], b[idx], op[idx]
        lop = np.where(parity[la], _ops.NEGATE_A[lop], lop)
        lop = np.where(parity[lb], _ops.NEGATE_B[lop], lop)
        lop, la, lb = canonical_form(lop, root[la], root[lb])
        op[idx], a[idx], b[idx] = lop, la, lb
        flip = _ops.TRUTH[lop, 0, 0].astype(bool)
        first = _first_of_class(np.where(flip, _ops.NEGATE_OUT[lop], lop).astype(np.uint8), la, lb, wide)
        root[n + idx] = n + idx[first]
        parity[n + idx] = flip ^ flip[first]
    base, out = outputs_to_roots(circuit, root, parity)
    return sweep(base, op, a, b, out)
