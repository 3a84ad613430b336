"""Exact cut rewriting: replace the cone of a 4-input cut by a minimum circuit when that frees gates.

For every gate, up to ``CUTS`` k-feasible cuts (k <= 4 leaves) are enumerated level by level with
numpy (each level merges its operands' cuts pairwise: sorted leaf sets, 16-bit truth tables
re-expressed over the union), together with the cut's *freed* size: the gates of the cone that
only the root reads (the maximum fanout-free cone, counted through single-reader operands), so
replacing the root frees exactly those. A cut is a candidate when the database of minimum
circuits (``npn4``: all 16 ops cost one gate, inversions free) implements its truth table with
fewer gates than it frees. Candidates (few: trained nets after O2 are nearly irreducible) are
checked one by one in Python: the new gates reuse existing gates by structural hashing (a reused
gate is free), the gain is freed - new gates, non-overlapping candidates are taken greedily by
gain, and the new gates are placed just before the root they replace. By default no node's level
grows (so the depth never grows: the stated bound is the input's depth); ``depth_bound=False``
(pass ``cut_rewrite_area``, pipeline ``O3-area``) rewrites for area alone. The pass repeats until
no candidate gains. Cost per sweep: O(gates * CUTS^2) numpy work over ``levels`` level slices,
plus O(candidates * cone) Python work.
"""
from __future__ import annotations

import functools

import numpy as np

from lgc.ir import Circuit, level_order, levels as _levels, ops as _ops

from . import npn4
from ._rewrite import compact, live_gates, until_unchanged

CUTS = 8  # cuts kept per node, the trivial cut included
_PAD = np.iinfo(np.int32).max
_CHUNK = 16384  # gates merged at once (bounds the temporaries: ~CUTS^2 * 100 bytes per gate)
_MAX_SWEEPS = 50
_SLACK = 1
_STRIDE = 1024  # placement keys: up to _STRIDE - 1 new gates before each replaced root


def _fan_out(circuit: Circuit) -> np.ndarray:
    """int64[nodes]: uses of each node (used operands and outputs)."""
    n = circuit.num_inputs
    use_a, use_b = ~_ops.IGNORES_A[circuit.op], ~_ops.IGNORES_B[circuit.op]
    fo = np.bincount(circuit.a[use_a], minlength=circuit.num_nodes)
    fo += np.bincount(circuit.b[use_b], minlength=circuit.num_nodes)
    fo += np.bincount(circuit.outputs, minlength=circuit.num_nodes)
    return fo[:n + circuit.num_gates].astype(np.int64)


@functools.lru_cache(maxsize=1)
def _expand_table() -> np.ndarray:
    """uint16[16, 65536]: a truth table over a sub-cut re-expressed over a 4-slot union, by the mask
    of union slots the sub-cut's (sorted) leaves occupy (both leaf lists ascend, so the mask says it all)."""
    tt = np.arange(1 << 16, dtype=np.int64)
    m = np.arange(16, dtype=np.int64)
    out = np.zeros((16, 1 << 16), dtype=np.uint16)
    for mask in range(16):
        pos = [p for p in range(4) if (mask >> p) & 1]
        sub = np.zeros(16, dtype=np.int64)
        for i, p in enumerate(pos):
            sub |= ((m >> p) & 1) << i
        out[mask] = (((tt[:, None] >> sub[None, :]) & 1) << m).sum(axis=1).astype(np.uint16)
    return out


def _expand(tt: np.ndarray, leaves: np.ndarray, union: np.ndarray) -> np.ndarray:
    """Truth tables over ``leaves`` (int32[P, 4], sorted, _PAD-padded) re-expressed over ``union``."""
    occupied = ((leaves[:, :, None] == union[:, None, :]) & (leaves != _PAD)[:, :, None]).any(axis=1)
    mask = (occupied * np.array([1, 2, 4, 8], dtype=np.int64)).sum(axis=1)
    return _expand_table()[mask, tt]


def enumerate_cuts(circuit: Circuit, max_cuts: int = CUTS):
    """Cuts of every node: (leaves int32[nodes, C, 4] sorted and _PAD-padded, truth tables
    uint16[nodes, C], freed gates int16[nodes, C], number of cuts int64[nodes]); cut 0 is the
    trivial cut {node}."""
    n, g, total = circuit.num_inputs, circuit.num_gates, circuit.num_nodes
    C = max_cuts
    leaves = np.full((total, C, 4), _PAD, dtype=np.int32)
    leaves[:, 0, 0] = np.arange(total)
    tts = np.zeros((total, C), dtype=np.uint16)
    tts[:, 0] = npn4.VAR_TT[0]
    freed = np.zeros((total, C), dtype=np.int16)
    ncut = np.ones(total, dtype=np.int64)
    fo = _fan_out(circuit)
    op = circuit.op
    ign_a, ign_b = _ops.IGNORES_A[op], _ops.IGNORES_B[op]
    a = np.where(ign_a & ~ign_b, circuit.b, circuit.a).astype(np.int64)  # an ignored operand reads the other
    b = np.where(ign_b, a, circuit.b).astype(np.int64)
    one_operand = ign_a | ign_b
    order, bounds = level_order(circuit)
    ia, ib = np.meshgrid(np.arange(C), np.arange(C), indexing="ij")
    ia, ib = ia.reshape(-1), ib.reshape(-1)
    chunks = [(s, min(s + _CHUNK, hi)) for lo, hi in zip(bounds[:-1], bounds[1:]) for s in range(lo, hi, _CHUNK)]
    for lo, hi in chunks:  # a level's gates read only lower levels: any chunk of a level is independent
        gi = order[lo:hi]
        L = gi.size
        na, nb = a[gi], b[gi]
        ok = (ia[None, :] < ncut[na][:, None]) & (ib[None, :] < ncut[nb][:, None])
        ok &= ~one_operand[gi][:, None] | (ia == ib)[None, :]
        rows, pair = np.nonzero(ok)
        ra, rb = na[rows], nb[rows]
        ca, cb = ia[pair], ib[pair]
        la, lb = leaves[ra, ca], leaves[rb, cb]
        both = np.sort(np.concatenate([la, lb], axis=1), axis=1)
        dup = np.zeros_like(both, dtype=bool)
        dup[:, 1:] = both[:, 1:] == both[:, :-1]
        both[dup] = _PAD
        both = np.sort(both, axis=1)
        size = (both != _PAD).sum(axis=1)
        keep = size <= 4
        rows, la, lb, ra, rb, ca, cb, union = rows[keep], la[keep], lb[keep], ra[keep], rb[keep], ca[keep], cb[keep], \
            both[keep, :4]
        ta = _expand(tts[ra, ca], la, union)
        tb = _expand(tts[rb, cb], lb, union)
        gates = gi[rows]
        tt = npn4.gate_tt(op[gates], ta, tb)
        fr = 1 + np.where((fo[ra] == 1) & ~(ign_a & ign_b)[gates], freed[ra, ca], 0).astype(np.int64) + \
            np.where((fo[rb] == 1) & ~one_operand[gates], freed[rb, cb], 0)
        fr = np.minimum(fr, np.iinfo(np.int16).max)
        # dedupe leaf sets per gate, keep the C - 1 with the most freed gates (cut 0 stays trivial)
        srt = np.lexsort((-fr, union[:, 3], union[:, 2], union[:, 1], union[:, 0], rows))
        rows, union, tt, fr = rows[srt], union[srt], tt[srt], fr[srt]
        first = np.ones(rows.size, dtype=bool)
        first[1:] = (rows[1:] != rows[:-1]) | (union[1:] != union[:-1]).any(axis=1)
        rows, union, tt, fr = rows[first], union[first], tt[first], fr[first]
        srt = np.lexsort((union[:, 0], -fr, rows))
        rows, union, tt, fr = rows[srt], union[srt], tt[srt], fr[srt]
        start = np.ones(rows.size, dtype=bool)
        start[1:] = rows[1:] != rows[:-1]
        group_start = np.maximum.accumulate(np.where(start, np.arange(rows.size), 0))
        rank = np.arange(rows.size) - group_start
        take = rank < C - 1
        nodes = n + gi[rows[take]]
        slot = 1 + rank[take]
        leaves[nodes, slot] = union[take]
        tts[nodes, slot] = tt[take]
        freed[nodes, slot] = fr[take]
        ncut[n + gi] = 1 + np.bincount(rows[take], minlength=L)
    return leaves, tts, freed, ncut


class _Rewriter:
    """Checks candidates one by one against the current circuit and records accepted ones."""

    def __init__(self, circuit: Circuit, depth_bound: bool):
        self.c = circuit
        self.n = circuit.num_inputs
        self.depth_bound = depth_bound
        self.fo = _fan_out(circuit)
        lv = _levels(circuit)
        self.level = np.concatenate([np.zeros(self.n, dtype=np.int64), lv.astype(np.int64)])
        op, a, b = circuit.op, circuit.a.astype(np.int64), circuit.b.astype(np.int64)
        self.use_a, self.use_b = ~_ops.IGNORES_A[op], ~_ops.IGNORES_B[op]
        k_op, k_a, k_b = self._canon(op.astype(np.int64), a, b)
        keys = (k_op.astype(np.uint64) << np.uint64(58)) | (k_a.astype(np.uint64) << np.uint64(29)) | \
            k_b.astype(np.uint64)
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]
        self.wide = circuit.num_nodes >= (1 << 29)
        self.freed_all: set[int] = set()
        self.kept_all: set[int] = set()
        self.accepted: list[tuple[int, list[tuple[int, int, int]], int]] = []

    @staticmethod
    def _canon(op, a, b):
        ign_a, ign_b = _ops.IGNORES_A[op], _ops.IGNORES_B[op]
        swap = (~ign_a & ~ign_b & (a > b)) | (ign_a & ~ign_b)
        op = np.where(swap, _ops.SWAP[op], op)
        a, b = np.where(swap, b, a), np.where(swap, a, b)
        b = np.where(_ops.IGNORES_B[op], a, b)
        const = _ops.IS_CONSTANT[op]
        return op, np.where(const, 0, a), np.where(const, 0, b)

    def _lookup(self, op: int, a: int, b: int, root: int) -> int:
        """An existing gate node < root computing (op, a, b), or -1."""
        if self.wide or a < 0 or b < 0:
            return -1
        k_op, k_a, k_b = (int(v[0]) for v in self._canon(np.array([op]), np.array([a]), np.array([b])))
        key = np.uint64((k_op << 58) | (k_a << 29) | k_b)
        i = int(np.searchsorted(self.keys, key))
        while i < self.keys.size and self.keys[i] == key:
            node = self.n + int(self.order[i])
            if node < root:
                return node
            i += 1
        return -1

    def _freed(self, root: int, cut: set[int]) -> set[int]:
        """The maximum fanout-free cone of ``root`` above ``cut``: gates whose every use is inside it."""
        n, c = self.n, self.c
        refs: dict[int, int] = {}
        out, stack = {root}, [root]
        while stack:
            x = stack.pop() - n
            for use, y in ((self.use_a[x], int(c.a[x])), (self.use_b[x], int(c.b[x]))):
                if use and y >= n and y not in cut:
                    r = refs.get(y, int(self.fo[y])) - 1
                    refs[y] = r
                    if r == 0:
                        out.add(y)
                        stack.append(y)
        return out

    def try_candidate(self, root: int, cut: np.ndarray, tt: int, cost: np.ndarray, circuits: np.ndarray) -> bool:
        leaves = [int(v) for v in cut if v != _PAD]
        leafset = set(leaves)
        if root in self.freed_all or root in self.kept_all or leafset & self.freed_all:
            return False
        freed = self._freed(root, leafset)
        if freed & self.kept_all or freed & self.freed_all:
            return False
        k = int(cost[tt])
        if k >= len(freed):
            return False
        slot = [leaves[i] if i < len(leaves) else leaves[0] for i in range(4)]
        best = None
        for variant in range(circuits.shape[1]):
            got = self._build(root, slot, tt, k, circuits[tt, variant], freed)
            if got is None:
                continue
            new, target, reused = got
            if best is None or len(new) < len(best[0]):
                best = got
        if best is None:
            return False
        new, target, reused = best
        if len(freed) - len(new) <= 0:
            return False
        return self._accept(root, new, target, reused, freed, leafset)

    def _accept(self, root: int, new: list, target: int, reused: set[int], freed: set[int], leafset: set[int]) -> bool:
        """Record a replacement of ``root``'s cone: the gates it frees, the nodes it keeps alive
        (leaves, reused gates, an existing target), and the move itself. Returns True."""
        self.freed_all |= freed
        self.kept_all |= leafset | reused
        if target >= 0:
            self.kept_all.add(target)
        self.accepted.append((root, new, target))
        return True

    def _build(self, root: int, slot: list[int], tt: int, k: int, gates_db: np.ndarray, freed: set[int]):
        """New gates for one database circuit (node refs >= 0 existing, -1 - j the j-th new gate),
        reusing existing gates; None when it would deepen the root beyond the bound."""
        refs = list(slot)
        new: list[tuple[int, int, int]] = []
        reused: set[int] = set()
        lv: dict[int, int] = {}
        for j in range(k):
            g_op, g_a, g_b = (int(v) for v in gates_db[j])
            ra, rb = refs[g_a], refs[g_b]
            hit = self._lookup(g_op, ra, rb, root)
            if hit >= 0 and hit not in freed and hit not in self.freed_all:
                refs.append(hit)
                reused.add(hit)
                continue
            new.append((g_op, ra, rb))
            ref = -len(new)
            lv[ref] = 1 + max(self._lev(ra, lv), self._lev(rb, lv))
            refs.append(ref)
        if k == 0:
            if tt == 0:  # constant 0: one FALSE gate
                new.append((_ops.FALSE, slot[0], slot[0]))
                lv[-1] = 1
                target = -1
            else:
                target = slot[[int(v) for v in npn4.VAR_TT].index(tt)]
        else:
            target = refs[-1]
        if self.depth_bound and self._lev(target, lv) > self.level[root]:
            return None
        return new, target, reused

    def _lev(self, ref: int, lv: dict) -> int:
        return lv[ref] if ref < 0 else int(self.level[ref])

    def apply(self) -> Circuit:
        """The circuit with every accepted replacement, new gates placed before their roots."""
        c, n = self.c, self.n
        g = c.num_gates
        alias = np.arange(c.num_nodes, dtype=np.int64)
        new_op, new_a, new_b, new_key = [], [], [], []
        base = g  # new gate j gets node id n + g + j in the appended numbering
        resolve = []
        for root, gates, target in self.accepted:
            first = base
            for s, (op, a_, b_) in enumerate(gates):
                new_op.append(op)
                new_a.append(a_ if a_ >= 0 else n + first + (-a_ - 1))
                new_b.append(b_ if b_ >= 0 else n + first + (-b_ - 1))
                new_key.append((root - n) * _STRIDE + s)
            base += len(gates)
            resolve.append((root, target if target >= 0 else n + first + (-target - 1)))
        for root, node in resolve:
            alias[root] = node
        alias = np.concatenate([alias, np.arange(c.num_nodes, c.num_nodes + len(new_op))])
        op = np.concatenate([c.op, np.array(new_op, dtype=np.uint8)])
        a = alias[np.concatenate([c.a, np.array(new_a, dtype=np.int64)])]
        b = alias[np.concatenate([c.b, np.array(new_b, dtype=np.int64)])]
        key = np.concatenate([np.arange(g, dtype=np.int64) * _STRIDE + _STRIDE - 1, np.array(new_key, dtype=np.int64)])
        perm = np.argsort(key, kind="stable")  # new gate order: perm[i] = old (appended) gate index
        new_id = np.empty(op.size, dtype=np.int64)
        new_id[perm] = np.arange(op.size)
        node_map = np.concatenate([np.arange(n), n + new_id])
        op, a, b = op[perm], node_map[a[perm]], node_map[b[perm]]
        out = node_map[alias[c.outputs.astype(np.int64)]]
        grown = c.replace(op=op, a=a.astype(np.int32), b=b.astype(np.int32), outputs=out.astype(np.int32),
                          layers=None)  # new gates sit inside old layers: the hint is dropped
        return compact(grown, grown.op, grown.a, grown.b, grown.outputs, live_gates(grown))


def _one_sweep(circuit: Circuit, depth_bound: bool) -> Circuit:
    cost, circuits = npn4.table()
    leaves, tts, freed, ncut = enumerate_cuts(circuit)
    n = circuit.num_inputs
    node, slot = np.nonzero(freed[n:] > 0)
    node = node + n
    tt = tts[node, slot]
    # the fanout-free tree under-counts a reconvergent cone, and reuse can add gain: look one gate further
    gain = freed[node, slot] - cost[tt].astype(np.int64)
    cand = gain > -_SLACK
    node, slot, gain = node[cand], slot[cand], gain[cand]
    if node.size == 0:
        return circuit
    srt = np.lexsort((node, -gain))
    rw = _Rewriter(circuit, depth_bound)
    for x, s in zip(node[srt].tolist(), slot[srt].tolist()):
        rw.try_candidate(x, leaves[x, s], int(tts[x, s]), cost, circuits)
    if not rw.accepted:
        return circuit
    return rw.apply()


def cut_rewrite(circuit: Circuit, *, depth_bound: bool = True) -> Circuit:
    """Exact 4-cut rewriting to a fixed point (see the module docstring). Function preserved exactly;
    with ``depth_bound`` (the default) no node's level grows, so neither does the depth."""
    circuit.validate()
    return until_unchanged(lambda c: _one_sweep(c, depth_bound), circuit, _MAX_SWEEPS)


def cut_rewrite_area(circuit: Circuit) -> Circuit:
    """``cut_rewrite`` for area alone: the depth may grow."""
    return cut_rewrite(circuit, depth_bound=False)
