"""Level sort: renumber the gates level by level (stable within a level).

The rewriting passes visit gates in node order and decide greedily, so the order matters; after
O2 the new gates a rewrite appended sit beside the gates they replaced, not with their level.
Sorting by level (``lgc.ir.level_order``) gives the O3 rewrites one canonical order, in which a
level's candidates are all seen before the next level's (trained conv net: O3 4,094 gates
instead of 4,100; benchmarks/RESULTS.md, Hardware). An ignored operand is pointed at the gate's
used operand (a constant's at node 0) so it stays before the gate. The function, depth and
gate count do not change; ``layers`` boundaries are dropped (the sorted order has its own).
Cost: one ``levels`` plus an O(G log G) sort.
"""
from __future__ import annotations

import numpy as np

from lgc.ir import Circuit, level_order, ops as _ops


def level_sort(circuit: Circuit) -> Circuit:
    """``circuit`` with its gates in level order (itself when they already are). Function preserved exactly."""
    circuit.validate()
    n, g = circuit.num_inputs, circuit.num_gates
    order, _ = level_order(circuit)
    if np.array_equal(order, np.arange(g)):
        return circuit
    op = circuit.op
    ignore_a, ignore_b = _ops.IGNORES_A[op], _ops.IGNORES_B[op]
    a = np.where(ignore_a, np.where(ignore_b, 0, circuit.b), circuit.a).astype(np.int64)
    b = np.where(ignore_b, a, circuit.b).astype(np.int64)
    new_id = np.empty(g, dtype=np.int64)
    new_id[order] = np.arange(g)
    node = np.concatenate([np.arange(n, dtype=np.int64), n + new_id])
    return circuit.replace(op=op[order], a=node[a[order]].astype(np.int32), b=node[b[order]].astype(np.int32),
                           outputs=node[circuit.outputs].astype(np.int32), layers=None)
