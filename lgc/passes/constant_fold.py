"""Constant folding: fold gates whose value, or whose dependence on one operand, a constant fixes.

A constant gate (FALSE/TRUE) feeding a used operand turns its consumer into a one-input function
of the other operand: a constant, a copy or an inverter (the truth table's row or column).
New constants propagate: each sweep is O(gates) numpy work, and sweeps repeat until nothing
changes (at most the length of the longest chain of folds). Copies and inverters left behind are
for ``collapse_passthrough`` and ``absorb_not``; gates left dead are swept.
"""
from __future__ import annotations

import numpy as np

from lgc.ir import Circuit, ops as _ops

from ._rewrite import sweep


def _restrict(fix_a: bool) -> np.ndarray:
    """FIX[op, v]: the op of f with operand a (or b) fixed to v, as a function of the other."""
    table = np.zeros((_ops.NUM_OPS, 2), dtype=np.uint8)
    for op in range(_ops.NUM_OPS):
        for v in (0, 1):
            if fix_a:
                lo, hi = _ops.TRUTH[op, v, 0], _ops.TRUTH[op, v, 1]      # function of b
                table[op, v] = [[_ops.FALSE, _ops.B], [_ops.NOT_B, _ops.TRUE]][lo][hi]
            else:
                lo, hi = _ops.TRUTH[op, 0, v], _ops.TRUTH[op, 1, v]      # function of a
                table[op, v] = [[_ops.FALSE, _ops.A], [_ops.NOT_A, _ops.TRUE]][lo][hi]
    return table


FIX_A = _restrict(True)
FIX_B = _restrict(False)


def constant_fold(circuit: Circuit) -> Circuit:
    """Fold constants through the circuit (see the module docstring). Function preserved exactly."""
    circuit.validate()
    n = circuit.num_inputs
    op = circuit.op.copy()
    a, b = circuit.a, circuit.b
    is_const = np.zeros(circuit.num_nodes, dtype=bool)
    value = np.zeros(circuit.num_nodes, dtype=np.uint8)
    is_const[n:] = _ops.IS_CONSTANT[op]
    value[n:] = op == _ops.TRUE
    todo = np.flatnonzero(~_ops.IS_CONSTANT[op])
    while todo.size:
        t_op = op[todo]
        ta, tb = a[todo], b[todo]
        ca = is_const[ta] & ~_ops.IGNORES_A[t_op]
        cb = is_const[tb] & ~_ops.IGNORES_B[t_op]
        hit = ca | cb
        if not hit.any():
            break
        new = np.where(ca, FIX_A[t_op, value[ta]], t_op)
        new = np.where(cb, FIX_B[new, value[tb]], new)
        todo, new = todo[hit], new[hit]
        op[todo] = new
        became = _ops.IS_CONSTANT[new]
        is_const[n + todo[became]] = True
        value[n + todo[became]] = new[became] == _ops.TRUE
        # only gates that still read a constant on a used operand can change again: re-scan all
        # non-constant gates (a fold anywhere may enable one downstream)
        todo = np.flatnonzero(~_ops.IS_CONSTANT[op])
    return sweep(circuit, op, a, b, circuit.outputs)
