"""Refactoring: re-derive a gate's function over a larger cut as a factored form when that frees gates.

Exact 4-cut rewriting (``cut_rewrite``) sees at most 4 leaves; the AND/OR logic of trained nets
(kernel trees over overlapping windows, pooling ORs) shares literals over wider cones. For each
candidate root this pass (after ABC's ``refactor``, Mishchenko et al., "DAG-aware AIG rewriting",
DAC 2006) takes a *reconvergence-driven cut* of up to k leaves (sweeps alternate k = 6 and 8,
``K``; leaves are expanded while the cut does not grow beyond k, cheapest expansion first, so
reconvergent paths close inside the cone), computes the root's truth table over the cut (Python
integers as 2^k-bit vectors), an
irredundant sum of products of the function and of its complement (Minato-Morreale ISOP), and a
factored form of each (algebraic factoring by the most frequent literal and the common cube of
its cubes). Both forms are built as 2-input gates (an n-ary AND or OR is one gate per operand
pair, operand and output inversions are free in the 16-op model), pairing the shallowest operands
first and reusing existing gates (or their complements) by structural hashing; the one with fewer
new gates replaces the root when that is fewer than the root's maximum fanout-free cone above the
cut frees. By default no
node's level grows (so the depth never grows: the stated bound is the input's depth);
``depth_bound=False`` (pass ``refactor_area``, pipeline ``O3-area``) rewrites for area alone.
Non-overlapping replacements are applied per sweep, sweeps repeat until none gains.

Candidates are the gates with an operand gate that only they read (one vectorised fanout count
picks them); the per-candidate work is Python (cut, cone simulation, ISOP and factoring memoised by
truth table, structural-hash probes in a dict): about 0.1-0.3 ms per candidate and sweep on the
trained conv net, so circuits above ``MAX_GATES`` gates are returned unchanged (O2 runs the pass
only up to ``manager.O2_REWRITE_MAX_GATES``). What it gains on trained nets: benchmarks/RESULTS.md
(Passes, issue 19).
"""
from __future__ import annotations

import functools
from collections import Counter

import numpy as np

from lgc.ir import Circuit, ops as _ops

from ._rewrite import ONE_INPUT
from .cut_rewrite import _fan_out, _Rewriter
from .extract_pairs import _gate_op

K = (6, 8)  #: leaves per cut (truth tables of 2^k bits), one sweep with each in turn
MAX_GATES = 300_000
_MAX_SWEEPS = 20
MIN_CONE = 3
_MAX_NEW = 1000  # new gates per root (the replacement's placement key leaves room for this many)


@functools.lru_cache(maxsize=None)
def _masks(k: int) -> tuple[tuple[int, ...], int]:
    """(truth table of each variable over 2^k rows, the all-ones table)."""
    rows = 1 << k
    return tuple(sum(1 << m for m in range(rows) if (m >> v) & 1) for v in range(k)), (1 << rows) - 1


def _eval(op: int, x: int, y: int, full: int) -> int:
    """A gate's output table from its operands' tables (``f(a, b) = (op >> (3 - 2a - b)) & 1``)."""
    r = 0
    if op & 8:
        r |= ~x & ~y
    if op & 4:
        r |= ~x & y
    if op & 2:
        r |= x & ~y
    if op & 1:
        r |= x & y
    return r & full


def _cofactors(t: int, v: int, masks: tuple[int, ...], full: int) -> tuple[int, int]:
    m, s = masks[v], 1 << v
    hi, lo = t & m, t & ~m & full
    return lo | (lo << s), hi | (hi >> s)


def isop(on: int, upper: int, k: int, masks: tuple[int, ...], full: int) -> tuple[list[tuple[int, ...]], int]:
    """Minato-Morreale irredundant sum of products of a function between ``on`` and ``upper``
    (truth tables over variables 0..k-1): (cubes as tuples of literals 2 * var + negated, the cover's table)."""
    if on == 0:
        return [], 0
    if upper == full:
        return [()], full
    v = k - 1
    while v >= 0:
        o0, o1 = _cofactors(on, v, masks, full)
        u0, u1 = _cofactors(upper, v, masks, full)
        if o0 != o1 or u0 != u1:
            break
        v -= 1
    c0, f0 = isop(o0 & ~u1 & full, u0, v, masks, full)
    c1, f1 = isop(o1 & ~u0 & full, u1, v, masks, full)
    cs, fs = isop(((o0 & ~f0) | (o1 & ~f1)) & full, u0 & u1, v, masks, full)
    m = masks[v]
    cover = fs | (f0 & ~m & full) | (f1 & m)
    return [c + (2 * v + 1,) for c in c0] + [c + (2 * v,) for c in c1] + cs, cover


def factor(cubes: list[tuple[int, ...]]):
    """A factored form of a sum of products: ``("lit", l)``, ``("const", 0/1)``, or
    ``("and" | "or", [children])`` (algebraic division by the most frequent literal and the common
    cube of the cubes holding it)."""
    if not cubes:
        return ("const", 0)
    if any(len(c) == 0 for c in cubes):
        return ("const", 1)
    if len(cubes) == 1:
        return _and([("lit", x) for x in cubes[0]])
    count = Counter(x for c in cubes for x in c)
    lit, n = max(sorted(count.items()), key=lambda kv: kv[1])
    if n == 1:
        return _or([_and([("lit", x) for x in c]) for c in cubes])
    q = [set(c) for c in cubes if lit in c]
    rest = [c for c in cubes if lit not in c]
    common = set.intersection(*q)
    quotient = [tuple(sorted(c - common)) for c in q]
    term = _and([("lit", x) for x in sorted(common)] + [factor(quotient)])
    return _or([term, factor(rest)]) if rest else term


def _and(children):
    return _nary("and", children)


def _or(children):
    return _nary("or", children)


def _nary(kind, children):
    flat = []
    for ch in children:
        flat.extend(ch[1] if ch[0] == kind else [ch])
    return flat[0] if len(flat) == 1 else (kind, flat)


@functools.lru_cache(maxsize=1 << 16)
def _forms(f: int, k: int) -> tuple:
    """Factored forms of f and of NOT f (truth tables over k variables); memoised: a convolution
    repeats its kernel's functions at every position."""
    masks, full = _masks(k)
    return tuple(factor(isop(t, t, k, masks, full)[0]) for t in (f, ~f & full))


_IGN_A, _IGN_B = _ops.IGNORES_A.tolist(), _ops.IGNORES_B.tolist()
_SWAP, _CONST = _ops.SWAP.tolist(), _ops.IS_CONSTANT.tolist()


class _Reject(Exception):
    """A factored form this builder does not take (a constant inside it)."""


class _Refactorer(_Rewriter):
    def __init__(self, circuit: Circuit, depth_bound: bool, k: int):
        super().__init__(circuit, depth_bound)
        self.k = k
        self.masks, self.full = _masks(k)
        op = circuit.op
        a, b = circuit.a.tolist(), circuit.b.tolist()
        use_a, use_b = self.use_a.tolist(), self.use_b.tolist()
        self.fanins = [tuple(sorted({y for y, u in ((a[i], use_a[i]), (b[i], use_b[i])) if u}))
                       for i in range(op.size)]
        self.ops = op.tolist()
        self.lv = self.level.tolist()
        # structural hash table as a dict (key -> lowest gate node), probed in pure Python
        keys, first = np.unique(self.keys, return_index=True)
        self.table = dict(zip(keys.tolist(), (self.n + self.order[first]).tolist()))

    def _lookup(self, op: int, a: int, b: int, root: int) -> int:
        """An existing gate node < root computing (op, a, b), or -1 (``_Rewriter._lookup`` without numpy)."""
        if a < 0 or b < 0:
            return -1
        ign_a, ign_b = _IGN_A[op], _IGN_B[op]
        if (not ign_a and not ign_b and a > b) or (ign_a and not ign_b):
            op, a, b = _SWAP[op], b, a
        if _IGN_B[op]:
            b = a
        if _CONST[op]:
            a = b = 0
        node = self.table.get((op << 58) | (a << 29) | b, -1)
        return node if node < root else -1

    def cut(self, root: int) -> tuple[list[int], list[int]]:
        """A reconvergence-driven cut of ``root`` (at most k leaves) and the cone's gates, ascending."""
        n = self.n
        leaves = set(self.fanins[root - n])
        seen = leaves | {root}
        while True:
            best, best_cost = -1, self.k + 1
            for x in leaves:
                if x < n:
                    continue
                cost = sum(1 for y in self.fanins[x - n] if y not in seen) - 1
                if cost < best_cost or (cost == best_cost and x > best):
                    best, best_cost = x, cost
            if best < 0 or len(leaves) + best_cost > self.k:
                break
            leaves.discard(best)
            for y in self.fanins[best - n]:
                if y not in seen:
                    seen.add(y)
                    leaves.add(y)
        return sorted(leaves), sorted(seen - leaves)

    def try_root(self, root: int) -> bool:
        if root in self.freed_all or root in self.kept_all:
            return False
        leaves, cone = self.cut(root)
        if len(cone) < MIN_CONE or len(leaves) > self.k:
            return False
        leafset = set(leaves)
        if leafset & self.freed_all:
            return False
        freed = self._freed(root, leafset)
        if len(freed) < MIN_CONE or freed & self.kept_all or freed & self.freed_all:
            return False
        n, full = self.n, self.full
        val = {x: self.masks[i] for i, x in enumerate(leaves)}
        c = self.c
        for x in cone:
            g = x - n
            op = self.ops[g]
            val[x] = _eval(op, val.get(int(c.a[g]), 0), val.get(int(c.b[g]), 0), full)
        f = val[root]
        best = None
        for neg, form in enumerate(_forms(f, self.k)):  # output inversion is free: factor f and NOT f
            if form[0] == "const":
                return False
            got = self._build_form(root, leaves, form, neg, freed)  # reuse may favour more literals
            if got is not None and (best is None or len(got[0]) < len(best[0])):
                best = got
        if best is None:
            return False
        new, target, reused = best
        if len(new) >= len(freed) or len(new) > _MAX_NEW:
            return False
        return self._accept(root, new, target, reused, freed, leafset)

    def _build_form(self, root: int, leaves: list[int], form, neg: int, freed: set[int]):
        new: list[tuple[int, int, int]] = []
        reused: set[int] = set()
        lv: dict[int, int] = {}

        def gate(op: int, ra: int, rb: int) -> tuple[int, int]:
            """(ref, negated) of a gate computing (op, ra, rb): an existing gate or its complement, else new."""
            for neg, o in ((0, op), (1, int(_ops.NEGATE_OUT[op]))):
                hit = self._lookup(o, ra, rb, root)
                if hit >= 0 and hit not in freed and hit not in self.freed_all:
                    reused.add(hit)
                    return hit, neg
            new.append((op, ra, rb))
            ref = -len(new)
            lv[ref] = 1 + max(self._lev(ra, lv), self._lev(rb, lv))
            return ref, 0

        def build(node, out_neg: int) -> tuple[int, int]:
            """(ref, negated) of a form node; out_neg folds into the node's last gate."""
            if node[0] == "lit":
                return leaves[node[1] >> 1], (node[1] & 1) ^ out_neg
            kind, children = node
            heap = []
            for ch in children:
                if ch[0] == "const":
                    raise _Reject
                ref, ng = build(ch, 0)
                heap.append((self._lev(ref, lv), len(heap), ref, ng))
            heap.sort()
            seq = len(heap)
            while len(heap) > 1:
                (_, _, r1, n1), (_, _, r2, n2) = heap[0], heap[1]
                heap = heap[2:]
                last = not heap
                o = out_neg if last else 0
                op = _gate_op("and", n1, n2, o) if kind == "and" else _gate_op("and", 1 - n1, 1 - n2, 1 - o)
                ref, ng = gate(op, r1, r2)
                item = (self._lev(ref, lv), seq, ref, ng)
                seq += 1
                i = 0  # keep the list sorted by level (short lists: insertion)
                while i < len(heap) and heap[i][0] <= item[0]:
                    i += 1
                heap.insert(i, item)
            return heap[0][2], heap[0][3]

        try:
            ref, ng = build(form, neg)
        except _Reject:
            return None
        if ng:  # a single negated literal: one inverter
            new.append((_ops.NOT_A, ref, ref))
            lv[-len(new)] = 1 + self._lev(ref, lv)
            ref = -len(new)
        if self.depth_bound and self._lev(ref, lv) > self.level[root]:
            return None
        return new, ref, reused


def _one_sweep(circuit: Circuit, depth_bound: bool, k: int) -> Circuit:
    n = circuit.num_inputs
    fo = _fan_out(circuit)
    op = circuit.op
    # a gate whose operand gates are read only by it heads a fanout-free cone of >= 2 gates
    single = np.zeros(circuit.num_nodes, dtype=bool)
    single[n:] = ~ONE_INPUT[op] & ~_ops.IS_CONSTANT[op]
    inner = single & (fo[:circuit.num_nodes] == 1)
    cand = np.flatnonzero(single[n:] & (inner[circuit.a] | inner[circuit.b])) + n
    if cand.size == 0:
        return circuit
    rf = _Refactorer(circuit, depth_bound, k)
    for root in cand.tolist():
        rf.try_root(root)
    if not rf.accepted:
        return circuit
    return rf.apply()


def refactor(circuit: Circuit, *, depth_bound: bool = True, k: int | tuple[int, ...] = K,
             max_gates: int = MAX_GATES) -> Circuit:
    """Refactor cones over reconvergence-driven cuts of up to ``k`` leaves (a tuple: sweeps with each
    in turn) to a fixed point (see the module docstring). Function preserved exactly; with
    ``depth_bound`` (the default) no node's level grows. Circuits above ``max_gates`` gates are
    returned unchanged. Raises ValueError for a cut size outside 2..12."""
    circuit.validate()
    ks = tuple(k) if isinstance(k, (tuple, list)) else (k,)
    if not ks or any(isinstance(x, bool) or not isinstance(x, int) or not 2 <= x <= 12 for x in ks):
        raise ValueError(f"refactor: cut sizes must be integers 2..12, got {k!r}")
    if circuit.num_gates > max_gates:
        return circuit
    idle = 0
    for sweep in range(_MAX_SWEEPS * len(ks)):
        nxt = _one_sweep(circuit, depth_bound, ks[sweep % len(ks)])
        idle = idle + 1 if nxt is circuit else 0
        circuit = nxt
        if idle >= len(ks):
            break
    return circuit


def refactor_area(circuit: Circuit) -> Circuit:
    """``refactor`` for area alone: the depth may grow."""
    return refactor(circuit, depth_bound=False)
