"""A circuit as data for the table-driven CPU kernels: gates by level and kind, values in slots.

Every gate becomes one of 12 kinds (constants, copy, not, and the 8 two-input functions, with
operands swapped where needed so ``~a & b`` is ``ANDNOT(b, a)``), sorted by (level, kind) so a
kernel runs each group as one branch-free loop. Node values live in *slots* allocated by
liveness: a gate's slot is recycled after the last level that reads it, so the buffer a kernel
needs per tile is the widest live cut (plus the inputs), not the whole circuit.
Cost: O(gates log gates) numpy work plus a Python step per level.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..ir import Circuit, levels
from ..ir import ops as _ops

KIND_NAMES = ("FALSE", "TRUE", "COPY", "NOT", "AND", "ANDNOT", "XOR", "OR", "NOR", "XNOR", "ORNOT", "NAND")
K_FALSE, K_TRUE, K_COPY, K_NOT, K_AND, K_ANDNOT, K_XOR, K_OR, K_NOR, K_XNOR, K_ORNOT, K_NAND = range(12)

# op code -> (kind, operands swapped?)
_KIND = np.array([K_FALSE, K_AND, K_ANDNOT, K_COPY, K_ANDNOT, K_COPY, K_XOR, K_OR,
                  K_NOR, K_XNOR, K_NOT, K_ORNOT, K_NOT, K_ORNOT, K_NAND, K_TRUE], dtype=np.int32)
_SWAP = np.array([0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0], dtype=bool)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Kernel tables. ``groups``: int32[G, 3] (kind, first gate row, end row); ``gates``:
    int32[g, 3] (slot of a, slot of b, slot of result); ``out_slots``: int32[O]; inputs are
    slots ``0 .. num_inputs-1``."""

    num_inputs: int
    num_slots: int
    groups: np.ndarray
    gates: np.ndarray
    out_slots: np.ndarray


def schedule(circuit: Circuit) -> Schedule:
    circuit.validate()
    n, g = circuit.num_inputs, circuit.num_gates
    if g == 0:
        return Schedule(n, n, np.zeros((0, 3), np.int32), np.zeros((0, 3), np.int32),
                        np.asarray(circuit.outputs, dtype=np.int32).copy())
    lv = levels(circuit).astype(np.int64)
    depth = int(lv.max())
    op = circuit.op
    kind = _KIND[op]
    swap = _SWAP[op]
    a = np.where(swap, circuit.b, circuit.a).astype(np.int64)
    b = np.where(swap, circuit.a, circuit.b).astype(np.int64)
    reads_a = kind >= K_COPY
    reads_b = kind >= K_AND
    a = np.where(reads_a, a, 0)  # an ignored operand is never read: point it anywhere valid
    b = np.where(reads_b, b, a)

    # last level at which each gate's value is read (outputs: never freed)
    last = lv.copy()  # a value nobody reads is freed right after its own level
    for operand, used in ((a, reads_a), (b, reads_b)):
        src = operand[used] - n
        keep = src >= 0
        np.maximum.at(last, src[keep], lv[used][keep])
    out_gates = np.asarray(circuit.outputs, dtype=np.int64) - n
    last[out_gates[out_gates >= 0]] = depth + 1

    # liveness-based slot allocation, one vectorised step per level
    by_level = np.argsort(lv * 16 + kind, kind="stable")  # (level, kind) order: the run order
    level_bounds = np.searchsorted(lv[by_level], np.arange(1, depth + 2), side="left")
    free_order = np.argsort(last, kind="stable")
    free_bounds = np.searchsorted(last[free_order], np.arange(1, depth + 2), side="left")
    stack = np.empty(g, dtype=np.int64)
    top = 0
    next_new = 0
    slot = np.empty(g, dtype=np.int64)
    for level in range(1, depth + 1):
        # values whose last reader ran at level-1 (or earlier) are free now
        if level >= 2:
            released = slot[free_order[free_bounds[level - 2]:free_bounds[level - 1]]]
            stack[top:top + released.size] = released
            top += released.size
        gates_here = by_level[level_bounds[level - 1]:level_bounds[level]]
        need = gates_here.size
        reuse = min(need, top)
        slot[gates_here[:reuse]] = stack[top - reuse:top]
        top -= reuse
        fresh = need - reuse
        slot[gates_here[reuse:]] = np.arange(next_new, next_new + fresh)
        next_new += fresh
    gate_slot = slot + n
    node_slot = np.concatenate([np.arange(n, dtype=np.int64), gate_slot])

    rows = np.stack([node_slot[a[by_level]], node_slot[b[by_level]], gate_slot[by_level]], axis=1).astype(np.int32)
    key = lv[by_level] * 16 + kind[by_level]
    # gates of one group are independent: run them in operand-slot order so reads of a stream
    # through memory (fewer cache and TLB misses on wide nets)
    within = np.lexsort((rows[:, 0], key))
    rows, key = rows[within], key[within]
    starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    ends = np.concatenate([starts[1:], [g]])
    groups = np.stack([kind[by_level][starts], starts, ends], axis=1).astype(np.int32)
    out_slots = node_slot[np.asarray(circuit.outputs, dtype=np.int64)].astype(np.int32)
    return Schedule(n, n + next_new, groups, np.ascontiguousarray(rows), out_slots)


@dataclasses.dataclass(frozen=True)
class Readout:
    """A group-sum head as signed weighted popcounts, so duplicate, negated and constant outputs
    cost no gates and are counted once. Class ``c``'s score is ``consts[c]`` plus, for every row
    ``(c, shift, sign, start, end)`` of ``terms``, ``sign * (popcount of the slots
    term_slots[start:end]) << shift``."""

    consts: np.ndarray
    terms: np.ndarray
    term_slots: np.ndarray


_FOLLOW = {3: (0, 1), 5: (1, 1), 12: (0, -1), 10: (1, -1)}  # op -> (operand b?, sign): A, B, NOT_A, NOT_B


def readout_schedule(circuit: Circuit) -> tuple[Schedule, Readout]:
    """The schedule of only the gates the head needs, and the head as weighted popcounts.

    Outputs that are copies or negations of other nodes are followed to their source
    (``~y`` counts as ``1 - y``), constant outputs fold into ``consts``, and equal outputs of one
    class count once with their multiplicity as a weight (split into its binary digits); gates
    no remaining output reads are dropped. Needs a group-sum head. Cost: O(outputs) Python work
    plus :func:`schedule` of the reduced circuit.
    """
    circuit.validate()
    if circuit.head is None:
        raise ValueError("readout_schedule needs a group-sum head")
    n, k = circuit.num_inputs, circuit.head.k
    op, ca, cb = circuit.op.tolist(), circuit.a.tolist(), circuit.b.tolist()
    outs = circuit.outputs.tolist()
    group = len(outs) // k
    consts = np.zeros(k, dtype=np.int64)
    weights: list[dict[int, int]] = []
    for c in range(k):
        w: dict[int, int] = {}
        for node in outs[c * group:(c + 1) * group]:
            sign = 1
            while node >= n:
                o = op[node - n]
                if o in _FOLLOW:
                    use_b, flip = _FOLLOW[o]
                    if flip < 0:
                        consts[c] += sign
                        sign = -sign
                    node = cb[node - n] if use_b else ca[node - n]
                elif o == 0 or o == 15:
                    consts[c] += sign if o == 15 else 0
                    node = -1
                    break
                else:
                    break
            if node >= 0:
                w[node] = w.get(node, 0) + sign
        weights.append({node: v for node, v in w.items() if v})
    roots = np.array(sorted({node for w in weights for node in w}), dtype=np.int64)
    reduced = _keep_cone(circuit, roots)
    sched = schedule(reduced)
    slot_of = dict(zip(roots.tolist(), sched.out_slots.tolist()))
    terms, term_slots = [], []
    for c, w in enumerate(weights):
        for sign in (1, -1):
            chosen = {node: abs(v) for node, v in w.items() if (v > 0) == (sign > 0)}
            bit = 0
            while any(v >> bit for v in chosen.values()):
                slots = sorted(slot_of[node] for node, v in chosen.items() if (v >> bit) & 1)
                if slots:
                    terms.append((c, bit, sign, len(term_slots), len(term_slots) + len(slots)))
                    term_slots.extend(slots)
                bit += 1
    return sched, Readout(consts.astype(np.int32), np.array(terms, dtype=np.int32).reshape(-1, 5),
                          np.array(term_slots, dtype=np.int32))


def _keep_cone(circuit: Circuit, roots: np.ndarray) -> Circuit:
    """``circuit`` reduced to the gates ``roots`` depend on, with ``roots`` as its outputs and no
    head (one numpy sweep per level)."""
    n, g = circuit.num_inputs, circuit.num_gates
    reads_a = ~_ops.IGNORES_A[circuit.op]
    reads_b = ~_ops.IGNORES_B[circuit.op]
    live = np.zeros(n + g, dtype=bool)
    live[roots] = True
    lv = levels(circuit) if g else np.zeros(0, dtype=np.int32)
    for level in range(int(lv.max()) if g else 0, 0, -1):
        here = np.flatnonzero((lv == level) & live[n:])
        live[circuit.a[here][reads_a[here]]] = True
        live[circuit.b[here][reads_b[here]]] = True
    keep = live[n:]
    remap = np.full(n + g, -1, dtype=np.int64)
    remap[:n] = np.arange(n)
    remap[n:][keep] = n + np.arange(int(keep.sum()))
    a = np.where(reads_a, remap[circuit.a], 0)[keep]
    b = np.where(reads_b, remap[circuit.b], 0)[keep]
    reduced = Circuit(n, circuit.op[keep], a.astype(np.int32), b.astype(np.int32), remap[roots].astype(np.int32))
    return reduced


def check_schedule_semantics() -> None:  # pragma: no cover - a debugging aid
    """Assert the kind table matches the truth tables."""
    fns = {K_FALSE: lambda x, y: 0, K_TRUE: lambda x, y: 1, K_COPY: lambda x, y: x, K_NOT: lambda x, y: 1 - x,
           K_AND: lambda x, y: x & y, K_ANDNOT: lambda x, y: x & (1 - y), K_XOR: lambda x, y: x ^ y,
           K_OR: lambda x, y: x | y, K_NOR: lambda x, y: 1 - (x | y), K_XNOR: lambda x, y: 1 - (x ^ y),
           K_ORNOT: lambda x, y: x | (1 - y), K_NAND: lambda x, y: 1 - (x & y)}
    for op in range(16):
        for x in (0, 1):
            for y in (0, 1):
                pa, pb = (y, x) if _SWAP[op] else (x, y)
                assert fns[int(_KIND[op])](pa, pb) == _ops.TRUTH[op, x, y], op
