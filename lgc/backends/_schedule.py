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

from ..ir import Circuit, fan_out, levels, live_nodes
from ..ir import ops as _ops

KIND_NAMES = ("FALSE", "TRUE", "COPY", "NOT", "AND", "ANDNOT", "XOR", "OR", "NOR", "XNOR", "ORNOT", "NAND")
K_FALSE, K_TRUE, K_COPY, K_NOT, K_AND, K_ANDNOT, K_XOR, K_OR, K_NOR, K_XNOR, K_ORNOT, K_NAND = range(12)
#: kind -> the op code (truth table of (a, b)) the kernels compute for it; the kinds are the 12 ops
#: closed under nothing but themselves: the other 4 are these with operands swapped
KIND_OP = np.array([_ops.FALSE, _ops.TRUE, _ops.A, _ops.NOT_A, _ops.AND, _ops.A_AND_NOT_B, _ops.XOR, _ops.OR,
                    _ops.NOR, _ops.XNOR, _ops.A_OR_NOT_B, _ops.NAND], dtype=np.uint8)


def _kind_table() -> tuple[np.ndarray, np.ndarray]:
    """op code -> (kind, operands swapped?), derived from ``KIND_OP`` and ``ops.SWAP`` (unswapped preferred)."""
    kind_of_op = {int(op): k for k, op in enumerate(KIND_OP)}
    kind = np.array([kind_of_op.get(op, kind_of_op.get(int(_ops.SWAP[op]), -1)) for op in range(_ops.NUM_OPS)],
                    dtype=np.int32)
    swap = np.array([op not in kind_of_op for op in range(_ops.NUM_OPS)], dtype=bool)
    assert (kind >= 0).all(), "every op is a kind, or a kind with swapped operands"
    return kind, swap


_KIND, _SWAP = _kind_table()


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
    tgates: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4), np.int32))
    #: gates left to the readout (``schedule(inline=...)``), in gate order: rows (kind, a, b, c)
    inline: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4), np.int32))


def schedule(circuit: Circuit, fused: tuple[np.ndarray, ...] | None = None,
             inline: np.ndarray | None = None) -> Schedule:
    """``fused`` (from :func:`fuse_pairs`): ``(a, b, c, imm, alive)`` [G]: gates with ``imm >= 0``
    are 3-input gates of operands (a, b, c) and kind ``16 + imm`` (``imm`` = vpternlogq truth
    table, bit ``4a + 2b + c``), their rows in ``Schedule.tgates`` (a, b, c, result); gates not
    ``alive`` are dropped (each was folded into its only reader). ``inline`` (bool [G]): gates
    no gate reads that the readout computes itself; they get no slot (their ``out_slots`` entry
    is -1), their operands stay live to the end, and their rows go to ``Schedule.inline``.
    Negated outputs are run through NOT gates (:meth:`Circuit.with_output_inverters`)."""
    circuit.validate()
    if circuit.output_negated.any():
        if fused is not None or inline is not None:
            raise ValueError("schedule: fused / inline gates are computed on a circuit without negated outputs")
        circuit = circuit.with_output_inverters()
    n, g = circuit.num_inputs, circuit.num_gates
    if g == 0:
        return Schedule(n, n, np.zeros((0, 3), np.int32), np.zeros((0, 3), np.int32),
                        np.asarray(circuit.outputs, dtype=np.int32).copy())
    inline = np.zeros(g, dtype=bool) if inline is None else np.asarray(inline, dtype=bool)
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
    c3 = np.zeros(g, dtype=np.int64)
    alive = np.ones(g, dtype=bool)
    if fused is not None:
        fa, fb, fc, imm, alive = fused
        tern = imm >= 0
        kind = np.where(tern, 16 + imm, kind)
        a = np.where(tern, fa, a).astype(np.int64)
        b = np.where(tern, fb, b).astype(np.int64)
        c3 = np.where(tern, fc, 0).astype(np.int64)
        reads_a = reads_a | tern
        reads_b = reads_b | tern
    reads_c = kind >= 16

    # last level at which each gate's value is read (outputs and operands of inline gates: never freed)
    last = lv.copy()  # a value nobody reads is freed right after its own level
    read_at = np.where(inline, depth + 1, lv)
    for operand, used in ((a, reads_a & alive), (b, reads_b & alive), (c3, reads_c & alive)):
        src = operand[used] - n
        keep = src >= 0
        np.maximum.at(last, src[keep], read_at[used][keep])
    out_gates = np.asarray(circuit.outputs, dtype=np.int64) - n
    last[out_gates[out_gates >= 0]] = depth + 1

    # liveness-based slot allocation, one vectorised step per level
    live_ids = np.flatnonzero(alive & ~inline)
    by_level = live_ids[np.argsort(lv[live_ids] * 512 + kind[live_ids], kind="stable")]  # (level, kind): the run order
    level_bounds = np.searchsorted(lv[by_level], np.arange(1, depth + 2), side="left")
    free_order = live_ids[np.argsort(last[live_ids], kind="stable")]
    free_bounds = np.searchsorted(last[free_order], np.arange(1, depth + 2), side="left")
    stack = np.empty(g, dtype=np.int64)
    g_run = live_ids.size
    top = 0
    next_new = 0
    slot = np.full(g, -1 - n, dtype=np.int64)   # gates without a slot end up at -1
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

    rows = np.stack([node_slot[a[by_level]], node_slot[b[by_level]], node_slot[c3[by_level]], gate_slot[by_level]],
                    axis=1).astype(np.int32)
    key = lv[by_level] * 512 + kind[by_level]
    # gates of one group are independent: run them in operand-slot order so reads of a stream
    # through memory (fewer cache and TLB misses on wide nets)
    within = np.lexsort((rows[:, 0], key))
    rows, key, kinds = rows[within], key[within], kind[by_level][within]
    is_t = kinds >= 16
    # binary gates index `gates`, 3-input ones `tgates`: each group's rows are contiguous in its table
    pos = np.where(is_t, np.cumsum(is_t) - 1, np.cumsum(~is_t) - 1)
    groups = np.zeros((0, 3), np.int32)   # every gate may be left to the readout
    if g_run:
        starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
        ends = np.concatenate([starts[1:], [g_run]])
        groups = np.stack([kinds[starts], pos[starts], pos[ends - 1] + 1], axis=1).astype(np.int32)
    out_slots = node_slot[np.asarray(circuit.outputs, dtype=np.int64)].astype(np.int32)
    ids = np.flatnonzero(inline)
    inline_rows = np.stack([kind[ids], node_slot[a[ids]], node_slot[b[ids]], node_slot[c3[ids]]], axis=1)
    return Schedule(n, n + next_new, groups, np.ascontiguousarray(rows[~is_t][:, [0, 1, 3]]), out_slots,
                    np.ascontiguousarray(rows[is_t]), np.ascontiguousarray(inline_rows.astype(np.int32)))


def fuse_pairs(circuit: Circuit) -> tuple[np.ndarray, ...]:
    """Fold gates with exactly one reader (a gate; not an output) into that reader, making it a
    3-input gate: one slot store and load fewer per pair. A gate that absorbed another is not
    absorbed itself (at most 3 inputs); a reader tries operand a first, then b. Returns
    ``schedule``'s ``fused`` tuple ``(a, b, c, imm, alive)``, int64/int64/int64/int64/bool [G].
    Cost: O(gates) numpy work per level (a gate's choice depends only on lower levels' choices)."""
    n, g = circuit.num_inputs, circuit.num_gates
    fa, fb, fc = (np.zeros(g, dtype=np.int64) for _ in range(3))
    imm = np.full(g, -1, dtype=np.int64)
    alive = np.ones(g, dtype=bool)
    if g == 0:
        return fa, fb, fc, imm, alive
    op = circuit.op
    a, b = circuit.a.astype(np.int64), circuit.b.astype(np.int64)
    is_output = np.zeros(n + g, dtype=bool)
    is_output[circuit.outputs] = True
    single = (fan_out(circuit, count_outputs=False) == 1) & ~is_output    # node-level: one reader, no output
    both = ~_ops.IGNORES_A[op] & ~_ops.IGNORES_B[op] & (a != b)
    cand_a = both & (a >= n) & single[a]
    cand_b = both & (b >= n) & single[b]
    src_a, src_b = np.maximum(a - n, 0), np.maximum(b - n, 0)   # gate index of a gate operand (masked otherwise)
    absorbed = np.zeros(g, dtype=bool)       # did gate i absorb one of its operands?
    side = np.full(g, -1, dtype=np.int8)     # which operand (0 = a, 1 = b)
    lv = levels(circuit)
    order = np.argsort(lv, kind="stable")
    for group in np.split(order, np.flatnonzero(np.diff(lv[order])) + 1):
        take_a = cand_a[group] & ~absorbed[src_a[group]]
        take_b = cand_b[group] & ~absorbed[src_b[group]] & ~take_a
        side[group[take_a]] = 0
        side[group[take_b]] = 1
        absorbed[group] = take_a | take_b
    h = np.flatnonzero(side >= 0)
    on_a = side[h] == 0
    p = np.where(on_a, a[h], b[h]) - n       # the absorbed gate
    z = np.where(on_a, b[h], a[h])           # the reader's other operand
    fa[h], fb[h], fc[h] = a[p], b[p], z
    alive[p] = False
    bit = np.arange(8)
    x, y, zv = (bit >> 2) & 1, (bit >> 1) & 1, bit & 1
    pv = _ops.TRUTH[op[p][:, None], x, y]                                   # [H, 8]: the absorbed gate's value
    hv = np.where(on_a[:, None], _ops.TRUTH[op[h][:, None], pv, zv], _ops.TRUTH[op[h][:, None], zv, pv])
    imm[h] = (hv.astype(np.int64) << bit).sum(axis=1)
    return fa, fb, fc, imm, alive


@dataclasses.dataclass(frozen=True)
class Readout:
    """A group-sum head as signed weighted popcounts, so duplicate, negated and constant outputs
    cost no gates and are counted once. Class ``c``'s score is ``consts[c]`` plus, for every row
    ``(c, shift, sign, start, end, v0, v1)`` of ``terms``, ``sign * (popcount of the slots
    term_slots[start:end] and of the values V[v0:v1]) << shift``. V holds the *head gates*, which
    the kernel computes per tile instead of giving them slots: a row ``(kind, g0, g1)`` of
    ``term_groups`` stands for the gates ``term_gates[g0:g1]`` of that kind, rows (slot a, slot
    b, slot c, place in V). Terms of one class are consecutive."""

    consts: np.ndarray
    terms: np.ndarray
    term_slots: np.ndarray
    term_groups: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 3), np.int32))
    term_gates: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4), np.int32))


#: op -> (reads operand b?, sign) for the one-operand ops (A, B, NOT_A, NOT_B): an output through one
#: is its operand's value (sign 1) or its complement (sign -1)
_FOLLOW = {op: (int(_ops.IGNORES_A[op]), 1 if _ops.TRUTH[op, 1, 1] else -1)
           for op in range(_ops.NUM_OPS) if _ops.IGNORES_A[op] != _ops.IGNORES_B[op]}


def readout_schedule(circuit: Circuit, *, fuse: bool = False, inline: bool = False) -> tuple[Schedule, Readout]:
    """The schedule of only the gates the head needs, and the head as weighted popcounts.

    Outputs that are copies or negations of other nodes are followed to their source
    (``~y`` counts as ``1 - y``), constant outputs fold into ``consts``, and equal outputs of one
    class count once with their multiplicity as a weight (split into its binary digits); gates
    no remaining output reads are dropped. ``fuse``: fold single-reader gates into their reader
    as 3-input gates (:func:`fuse_pairs`; only for kernels that run them, ``lgc_has_ternary``).
    ``inline``: gates that only the head reads, once ("head gates"), are run by the readout into
    a value buffer in count order, grouped by kind, instead of taking slots (a smaller live set,
    and the count reads them sequentially).
    Needs a group-sum head. Cost: O(outputs) Python work plus :func:`schedule` of the reduced circuit.
    """
    circuit.validate()
    if circuit.head is None:
        raise ValueError("readout_schedule needs a group-sum head")
    circuit = circuit.with_output_inverters()   # a negated output counts 1 - node, as ~y below
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
                elif _ops.IS_CONSTANT[o]:
                    consts[c] += sign if o == _ops.TRUE else 0
                    node = -1
                    break
                else:
                    break
            if node >= 0:
                w[node] = w.get(node, 0) + sign
        weights.append({node: v for node, v in w.items() if v})
    roots = np.array(sorted({node for w in weights for node in w}), dtype=np.int64)
    reduced = _keep_cone(circuit, roots)
    fused = fuse_pairs(reduced) if fuse else None
    in_line = _inline_roots(reduced, weights, roots) if inline else None
    sched = schedule(reduced, fused, in_line)
    slot_of = dict(zip(roots.tolist(), sched.out_slots.tolist()))
    gate_of: dict[int, tuple[int, ...]] = {}
    if in_line is not None:
        ids = np.flatnonzero(in_line) + n       # reduced node ids, in the order of sched.inline
        root_of = dict(zip(reduced.outputs.tolist(), roots.tolist()))
        gate_of = {root_of[int(i)]: tuple(row) for i, row in zip(ids, sched.inline.tolist())}
    terms, term_slots, head_rows = [], [], []
    for c, w in enumerate(weights):
        for sign in (1, -1):
            chosen = {node: abs(v) for node, v in w.items() if (v > 0) == (sign > 0)}
            bit = 0
            while any(v >> bit for v in chosen.values()):
                nodes = [node for node, v in chosen.items() if (v >> bit) & 1]
                slots = sorted(slot_of[node] for node in nodes if node not in gate_of)
                gates = [gate_of[node] for node in nodes if node in gate_of]
                if slots or gates:
                    v0 = len(head_rows)   # this term's values: V[v0:v1]
                    head_rows.extend((*row, v0 + i) for i, row in enumerate(gates))
                    terms.append((c, bit, sign, len(term_slots), len(term_slots) + len(slots), v0, len(head_rows)))
                    term_slots.extend(slots)
                bit += 1
    # all head gates of a tile run at once, grouped by kind (few, long branch-free loops), in
    # operand-slot order within a kind; each writes its value to its term's place in V
    rows = np.array(sorted(head_rows), dtype=np.int64).reshape(-1, 5)
    starts = np.flatnonzero(np.concatenate([[True], rows[1:, 0] != rows[:-1, 0]])) if len(rows) else np.zeros(0, np.int64)
    ends = np.concatenate([starts[1:], [len(rows)]])
    term_groups = np.stack([rows[starts, 0], starts, ends], axis=1) if len(rows) else np.zeros((0, 3), np.int64)
    return sched, Readout(consts.astype(np.int32), np.array(terms, dtype=np.int32).reshape(-1, 7),
                          np.array(term_slots, dtype=np.int32), term_groups.astype(np.int32),
                          np.ascontiguousarray(rows[:, 1:], dtype=np.int32))


def _inline_roots(reduced: Circuit, weights: list[dict[int, int]], roots: np.ndarray) -> np.ndarray:
    """bool [G] of ``reduced``: root gates no gate reads that appear in one class with weight +-1
    (so in exactly one popcount term)."""
    n, g = reduced.num_inputs, reduced.num_gates
    readers = fan_out(reduced, count_outputs=False)
    seen: dict[int, int] = {}
    for w in weights:
        for node, v in w.items():
            seen[node] = seen.get(node, 0) + (1 if abs(v) == 1 else 2)
    once = np.array([seen[int(r)] == 1 for r in roots], dtype=bool)
    node = reduced.outputs.astype(np.int64)     # reduced id of each root, in roots' order
    mask = np.zeros(g, dtype=bool)
    pick = once & (node >= n)
    pick[pick] &= readers[node[pick]] == 0
    mask[node[pick] - n] = True
    return mask


def _keep_cone(circuit: Circuit, roots: np.ndarray) -> Circuit:
    """``circuit`` reduced to the gates ``roots`` depend on, with ``roots`` as its outputs and no
    head (one numpy sweep per level)."""
    n, g = circuit.num_inputs, circuit.num_gates
    reads_a = ~_ops.IGNORES_A[circuit.op]
    reads_b = ~_ops.IGNORES_B[circuit.op]
    keep = live_nodes(circuit, roots=roots)[n:]
    remap = np.full(n + g, -1, dtype=np.int64)
    remap[:n] = np.arange(n)
    remap[n:][keep] = n + np.arange(int(keep.sum()))
    a = np.where(reads_a, remap[circuit.a], 0)[keep]
    b = np.where(reads_b, remap[circuit.b], 0)[keep]
    reduced = Circuit(n, circuit.op[keep], a.astype(np.int32), b.astype(np.int32), remap[roots].astype(np.int32))
    return reduced


def check_schedule_semantics() -> None:
    """Assert the kind tables match the truth tables (tests call this)."""
    for op in range(_ops.NUM_OPS):
        for x in (0, 1):
            for y in (0, 1):
                pa, pb = (y, x) if _SWAP[op] else (x, y)
                assert _ops.TRUTH[KIND_OP[_KIND[op]], pa, pb] == _ops.TRUTH[op, x, y], op
