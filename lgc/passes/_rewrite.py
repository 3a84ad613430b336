"""Shared machinery of the passes: liveness, compaction, and resolving chains of one-input gates.

Everything here is whole-array numpy work: liveness is :mod:`lgc.ir.liveness`'s, compaction is a handful of gathers, and
chain resolution is pointer jumping (O(nodes) per doubling, log2(longest chain) doublings).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from lgc.ir import Circuit, ops as _ops
from lgc.ir.liveness import live_mask as _live_mask

#: ops whose value is one operand, possibly negated: A, B, NOT_B, NOT_A.
ONE_INPUT = np.zeros(_ops.NUM_OPS, dtype=bool)
ONE_INPUT[[_ops.A, _ops.B, _ops.NOT_B, _ops.NOT_A]] = True
COPY = np.zeros(_ops.NUM_OPS, dtype=bool)
COPY[[_ops.A, _ops.B]] = True
#: for one-input ops: does the gate read operand b (else a)?
READS_B = np.zeros(_ops.NUM_OPS, dtype=bool)
READS_B[[_ops.B, _ops.NOT_B]] = True
INVERTS = np.zeros(_ops.NUM_OPS, dtype=bool)
INVERTS[[_ops.NOT_A, _ops.NOT_B]] = True


def live_gates(circuit: Circuit, op: np.ndarray | None = None, a: np.ndarray | None = None,
               b: np.ndarray | None = None, outputs: np.ndarray | None = None) -> np.ndarray:
    """bool[G]: does gate i reach an output through used operands? (ignored operands are not uses)."""
    return live_mask(circuit, op, a, b, outputs)[circuit.num_inputs:]


def live_mask(circuit: Circuit, op: np.ndarray | None = None, a: np.ndarray | None = None,
              b: np.ndarray | None = None, outputs: np.ndarray | None = None) -> np.ndarray:
    """bool[num_nodes]: does the node (input or gate) reach an output through used operands?
    (:func:`lgc.ir.liveness.live_mask` on the circuit's arrays, or on replacements for them)."""
    return _live_mask(circuit.num_inputs, circuit.op if op is None else op, circuit.a if a is None else a,
                      circuit.b if b is None else b, circuit.outputs if outputs is None else outputs)


def compact(circuit: Circuit, op: np.ndarray, a: np.ndarray, b: np.ndarray, outputs: np.ndarray,
            keep: np.ndarray) -> Circuit:
    """A circuit holding only the gates where ``keep`` is true, renumbered in order.

    Kept gates must not use a dropped gate; an ignored operand that pointed at a dropped gate is
    redirected to the gate's other operand (or input 0), so it stays valid. ``layers`` boundaries
    are remapped to the kept gates."""
    n = circuit.num_inputs
    kept = np.flatnonzero(keep)
    new_id = np.full(n + op.size, -1, dtype=np.int64)
    new_id[:n] = np.arange(n)
    new_id[n + kept] = n + np.arange(kept.size)
    op2 = op[kept]
    a2 = new_id[a[kept]]
    b2 = new_id[b[kept]]
    dead_a, dead_b = a2 < 0, b2 < 0
    a2 = np.where(dead_a, np.where(dead_b, 0, b2), a2)
    b2 = np.where(dead_b, np.where(dead_a, 0, a2), b2)
    out2 = new_id[outputs]
    if (out2 < 0).any():  # pragma: no cover - a pass bug, never user input
        raise AssertionError("compact dropped a gate an output reads")
    layers = circuit.layers
    if layers is not None:
        csum = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
        layers = csum[layers]
    return circuit.replace(op=op2, a=a2.astype(np.int32), b=b2.astype(np.int32),
                           outputs=out2.astype(np.int32), layers=layers)


def sweep(circuit: Circuit, op: np.ndarray, a: np.ndarray, b: np.ndarray, outputs: np.ndarray) -> Circuit:
    """The rewritten circuit without the gates that no longer reach an output.

    A rewrite that changed nothing returns ``circuit`` itself (it left nothing dead; dead gates
    it was given are ``dead_gate_elimination``'s business), so no-op passes cost no liveness walk."""
    if (np.array_equal(op, circuit.op) and np.array_equal(a, circuit.a) and np.array_equal(b, circuit.b)
            and np.array_equal(outputs, circuit.outputs)):
        return circuit
    keep = live_gates(circuit, op, a, b, outputs)
    if keep.all():
        return circuit.replace(op=op, a=a.astype(np.int32), b=b.astype(np.int32), outputs=outputs.astype(np.int32))
    return compact(circuit, op, a, b, outputs, keep)


def until_unchanged(step: Callable[[Circuit], Circuit], circuit: Circuit, max_steps: int) -> Circuit:
    """``step`` applied again and again until it returns its input itself (a sweep that changed
    nothing), at most ``max_steps`` times: the fixed-point loop of the sweeping rewrites."""
    for _ in range(max_steps):
        nxt = step(circuit)
        if nxt is circuit:
            break
        circuit = nxt
    return circuit


def outputs_to_roots(circuit: Circuit, root: np.ndarray, parity: np.ndarray) -> tuple[Circuit, np.ndarray]:
    """``(base, outputs)``: every output reads its node's ``root``; where the node computes
    ``NOT root`` (``parity``) the output's literal flips (``output_negated``), so no inverter or
    complement gate stays only for an output. ``base`` is ``circuit`` with those literals (itself
    when none flips), for :func:`sweep`."""
    out = circuit.outputs.astype(np.int64)
    odd = parity[out].astype(bool)
    base = circuit.replace(output_negated=circuit.output_negated ^ odd) if odd.any() else circuit
    return base, root[out]


def resolve_chains(circuit: Circuit, link_ops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Follow chains of one-input gates to their roots by vectorised pointer jumping.

    ``link_ops`` is a bool[16] table of the ops to look through (copies, or copies and inverters).
    Returns ``root`` int64[N] and ``parity`` bool[N]: node x computes ``root[x] XOR parity[x]``.
    """
    n, op = circuit.num_inputs, circuit.op
    total = n + op.size
    root = np.arange(total, dtype=np.int64)
    parity = np.zeros(total, dtype=bool)
    gates = np.flatnonzero(link_ops[op])
    if gates.size == 0:
        return root, parity
    g_op = op[gates]
    root[n + gates] = np.where(READS_B[g_op], circuit.b[gates], circuit.a[gates])
    parity[n + gates] = INVERTS[g_op]
    active = n + gates
    while active.size:
        nxt = root[active]
        step = root[nxt] != nxt  # still pointing at a link
        if not step.any():
            break
        active, nxt = active[step], nxt[step]
        parity[active] ^= parity[nxt]
        root[active] = root[nxt]
    return root, parity
