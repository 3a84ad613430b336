"""Liveness and fan-out: the one definition of which nodes an output needs and how often a node is read.

An ignored operand (both of FALSE/TRUE; b of A and NOT_A; a of B and NOT_B, per
:data:`lgc.ir.ops.IGNORES_A`/``IGNORES_B``) is not a use: dead-gate elimination, fan-out, stats,
the schedulers and the passes all agree on that because they all call this module.
Cost: liveness walks backwards one frontier at a time (O(gates) numpy work per frontier, depth
frontiers); fan-out is two bincounts.
"""
from __future__ import annotations

import numpy as np

from . import ops as _ops
from .circuit import Circuit


def _distinct(values: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """The distinct entries of ``values`` (node ids), in O(len) via a scratch array, no sort."""
    pos = np.arange(values.size)
    owner[values] = pos
    return values[owner[values] == pos]


def live_mask(num_inputs: int, op: np.ndarray, a: np.ndarray, b: np.ndarray, roots: np.ndarray) -> np.ndarray:
    """bool[num_inputs + G]: does the node reach one of ``roots`` (node ids) through used operands?

    The array form of :func:`live_nodes`, for passes that hold gate arrays not yet in a Circuit:
    ``op`` uint8[G], ``a``/``b`` int[G] with operands below their gate (not checked here)."""
    n = int(num_inputs)
    roots = np.asarray(roots, dtype=np.int64)
    live = np.zeros(n + op.size, dtype=bool)
    live[roots] = True
    use_a, use_b = ~_ops.IGNORES_A[op], ~_ops.IGNORES_B[op]
    owner = np.empty(n + op.size, dtype=np.int64)  # dedups a frontier without sorting it
    frontier = _distinct(roots[roots >= n], owner) - n
    while frontier.size:
        fa = a[frontier[use_a[frontier]]]
        fb = b[frontier[use_b[frontier]]]
        cand = np.concatenate([fa, fb]).astype(np.int64)
        cand = _distinct(cand[~live[cand]], owner)
        live[cand] = True
        frontier = cand[cand >= n] - n
    return live


def live_nodes(circuit: Circuit, roots: np.ndarray | None = None) -> np.ndarray:
    """bool[num_nodes]: does the node (input or gate) reach an output (or one of ``roots``, node ids)
    through used operands? Validates the circuit first (CircuitError)."""
    circuit.validate()
    roots = circuit.outputs if roots is None else roots
    return live_mask(circuit.num_inputs, circuit.op, circuit.a, circuit.b, roots)


def fan_out(circuit: Circuit, *, count_outputs: bool = True) -> np.ndarray:
    """int64[num_nodes]: how many gate operands (uses only) read each node, plus how many output
    positions name it when ``count_outputs`` (the default)."""
    use_a, use_b = ~_ops.IGNORES_A[circuit.op], ~_ops.IGNORES_B[circuit.op]
    counts = np.bincount(circuit.a[use_a], minlength=circuit.num_nodes)
    counts += np.bincount(circuit.b[use_b], minlength=circuit.num_nodes)
    if count_outputs:
        counts += np.bincount(circuit.outputs, minlength=circuit.num_nodes)
    return counts.astype(np.int64)
