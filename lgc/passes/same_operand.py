"""a == b simplification: a gate that reads one node twice is a function of that node alone.

Such a gate becomes ``SAME_OPERAND[op]``: FALSE, a copy, an inverter or TRUE (AND(x, x) = x,
XOR(x, x) = 0, NAND(x, x) = NOT x ...); constant folding, pass-through collapsing and NOT
absorption then remove it. One vectorised table lookup: O(gates).
"""
from __future__ import annotations

import numpy as np

from lgc.ir import Circuit, ops as _ops

from ._rewrite import sweep


def simplify_same_operand(circuit: Circuit) -> Circuit:
    """Replace gates with a == b by their one-input function. Function preserved exactly."""
    circuit.validate()
    # gates that ignore an operand already are one-input functions: leave their encoding alone
    same = (circuit.a == circuit.b) & ~_ops.IGNORES_A[circuit.op] & ~_ops.IGNORES_B[circuit.op]
    op = np.where(same, _ops.SAME_OPERAND[circuit.op], circuit.op).astype(np.uint8)
    return sweep(circuit, op, circuit.a, circuit.b, circuit.outputs)
