"""Don't-care resubstitution: re-express a gate through existing signals where its window proves it.

The moves of Berkeley ABC's ``mfs`` (Mishchenko, Brayton, "SAT-based logic optimization and
resynthesis", IWLS 2007; Mishchenko et al., "Scalable don't-care-based logic optimization and
resynthesis", FPGA 2009) in lgc's cost model (every 2-input gate costs 1; an inversion is free
because readers absorb it). For each live 2-input gate g, in topological order:

- **window**: g's transitive fanout, the ``max_tfo`` lowest-numbered nodes of it (node ids are a
  topological order, so that set is closed: every fanout node feeding a window node is in it);
  its *outputs* are g and the window nodes read from outside the window or by a circuit output;
- **care set** (observability don't-cares): on each simulation pattern, g matters only where
  flipping it changes a window output, found by re-simulating the window with g inverted;
- **divisors**: g's transitive fanin to ``tfi_levels`` levels, plus gates all of whose operands
  are divisors (siblings computing other functions of the same signals), at most ``max_divs``,
  all numbered below g (so no divisor is in g's fanout and the order stays topological);
- **candidates** (bit-parallel, numpy, over every divisor at once): g == d or NOT d on the care
  set (0 new gates), g constant on it, g == f(x, d) for a current operand x of g kept and a
  divisor d replacing the other, or g == f(d1, d2) over two of the first ``max_pair_divs``
  divisors outside g's cone (any of the 16 ops: g stays one gate), and optionally two-gate moves
  g == f(u, f2(v, w)); a candidate frees the gates of g's maximum fanout-free cone that its new
  operands no longer need (exact reference counting), and only a positive gain counts;
- **proof**: the best candidates by gain (at most ``max_tries``) go to a SAT miter: the whole
  circuit's CNF (python-sat, CaDiCaL, incremental, kept current as gates change), a copy of the
  window with g replaced, and "some window output differs"; UNSAT (within ``conflict_budget``
  conflicts) proves the window outputs, hence the circuit outputs, unchanged for every input
  (satisfiability don't-cares included). A satisfying assignment is a counterexample: every
  node's value on it is read off the model and written into the last pattern words at once, so
  the next candidates (for g too) are filtered by it.

Accepted changes apply at once (the CNF, simulation values, fanout and levels follow), so every
later proof is against the current circuit. With ``depth_bound`` (the default) no node's level
grows: a new operand pair must sit below g's level, a replacing signal at most at it (an output
that would read an inverter needs one level of room), so the depth never grows; ``depth_bound=False``
(``resub_area``, pipeline ``O3-area``) rewrites for area alone. Replaced gates become copies or
inverters that ``collapse_passthrough`` and ``absorb_not`` then remove, which this pass runs last.

Cost: one simulation of ``words`` x 64 patterns and one CNF of 4 clauses per gate, then per live
gate a Python loop of O(max_tfo + divisors) steps with numpy work of O(divisors x words) (two-gate
moves: O(max_double_divs^3 x words)) and up to ``max_tries`` small incremental SAT calls, each
counterexample O(nodes); measured 0.15-0.55 ms per gate (benchmarks/RESULTS.md, Passes: 86,562
gates took 48 s at load 4-5), so circuits above ``max_gates`` gates are returned unchanged.
Moves that only satisfiability don't-cares allow (g observed at its window's outputs: ``fraig``
finds the copies among them) and two-gate moves are off by default: they found nothing on the
trained nets (``sdc_moves``, ``max_double_divs`` turn them on).
"""
from __future__ import annotations

import heapq

import numpy as np

from lgc.ir import Circuit, levels as _levels, ops as _ops, simulate_words

from ._rewrite import ONE_INPUT, sweep, until_unchanged
from .absorb_not import absorb_not
from .equivalence import _gate_clauses
from .passthrough import collapse_passthrough

MAX_GATES = 100_000
_MAX_SWEEPS = 20
_SCREEN = 4  # pattern words at each end (random, counterexamples) that screen two-gate moves
_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
_IGN_A = _ops.IGNORES_A.tolist()
_IGN_B = _ops.IGNORES_B.tolist()
_ONE_INPUT = ONE_INPUT.tolist()
_CONST = _ops.IS_CONSTANT.tolist()
_TRUTH = _ops.TRUTH.tolist()

#: op code -> word function f(a, b) on uint64 arrays (one numpy call for most ops)
_APPLY = (
    lambda x, y: np.zeros_like(x), np.bitwise_and, lambda x, y: x & ~y, lambda x, y: x.copy(),
    lambda x, y: ~x & y, lambda x, y: y.copy(), np.bitwise_xor, np.bitwise_or,
    lambda x, y: ~(x | y), lambda x, y: ~(x ^ y), lambda x, y: ~y, lambda x, y: x | ~y,
    lambda x, y: ~x, lambda x, y: ~x | y, lambda x, y: ~(x & y), lambda x, y: np.full_like(x, _ONES),
)


def _gate_cnf(op: int, la: int, lb: int, lg: int) -> list[list[int]]:
    """Tseitin clauses of ``lg == op(la, lb)`` over signed literals (the form of ``_gate_clauses``)."""
    t = _TRUTH[op]
    return [[la if x == 0 else -la, lb if y == 0 else -lb, lg if t[x][y] else -lg]
            for x in (0, 1) for y in (0, 1)]


class _Resub:
    """The mutable circuit, its simulation values and its CNF, changed one proven move at a time."""

    def __init__(self, circuit: Circuit, *, words: int, seed: int, depth_bound: bool, max_tfo: int,
                 tfi_levels: int, max_divs: int, max_pair_divs: int, max_double_divs: int, max_tries: int,
                 conflict_budget: int, sdc_moves: bool):
        from pysat.solvers import Solver
        self.c = circuit
        n, g = circuit.num_inputs, circuit.num_gates
        self.n, self.total = n, n + g
        self.depth_bound, self.max_tfo, self.tfi_levels = depth_bound, max_tfo, tfi_levels
        self.max_divs, self.max_pair_divs, self.max_double_divs = max_divs, max_pair_divs, max_double_divs
        self.max_tries, self.conflict_budget, self.sdc_moves = max_tries, conflict_budget, sdc_moves
        self.op = circuit.op.tolist()
        self.a = circuit.a.tolist()
        self.b = circuit.b.tolist()
        self.fin: list[tuple[int, ...]] = [()] * n + [self._used(x) for x in range(n, self.total)]
        self.readers: list[list[int]] = [[] for _ in range(self.total)]
        for x in range(n, self.total):
            for f in self.fin[x]:
                self.readers[f].append(x)
        self.po = np.bincount(circuit.outputs, minlength=self.total).tolist()
        self.level = [0] * n + _levels(circuit).tolist()
        # simulation patterns: random words; the last quarter is overwritten by counterexamples, one bit each
        rng = np.random.default_rng(seed)
        x = rng.integers(0, np.iinfo(np.int64).max, size=(n, words), dtype=np.int64).astype(np.uint64)
        x = (x << np.uint64(1)) | rng.integers(0, 2, size=(n, words), dtype=np.int64).astype(np.uint64)
        self.values = simulate_words(circuit.replace(outputs=np.arange(self.total, dtype=np.int32), output_negated=None,
                                                     head=None), x)
        self.cex_slot, self.cex_words = 0, max(1, words // 4)
        self.words = words
        clauses, var = _gate_clauses(circuit, n + 1)
        self.var = var.tolist()
        self.next_var = n + g + 1
        self.solver = Solver(name="cadical153", bootstrap_with=clauses.tolist())
        self.true = self._new_var()
        self.solver.add_clause([self.true])
        self.accepted = self.sat_calls = self.sat_refuted = 0

    def _new_var(self) -> int:
        self.next_var += 1
        return self.next_var - 1

    # -- structure ------------------------------------------------------------------------
    def _used(self, x: int) -> tuple[int, ...]:
        """Used operands of gate node x (with repetition when both operands are one node)."""
        i = x - self.n
        o = self.op[i]
        return (() if _IGN_A[o] else (self.a[i],)) + (() if _IGN_B[o] else (self.b[i],))

    def _cost(self, x: int) -> int:
        return 0 if _ONE_INPUT[self.op[x - self.n]] else 1

    def _deref(self, drops: list[int]) -> set[int]:
        """Gates that die when one use of each node in ``drops`` goes (the fanout-free cone)."""
        n, refs, freed = self.n, {}, set()
        stack = list(drops)
        while stack:
            y = stack.pop()
            if y < n:
                continue
            r = refs.get(y, len(self.readers[y]) + self.po[y]) - 1
            refs[y] = r
            if r == 0:
                freed.add(y)
                stack.extend(self.fin[y])
        return freed

    def _gain(self, freed: set[int], keep: tuple[int, ...]) -> int:
        """Cost of ``freed`` minus what ``keep`` (new operands) revives of it."""
        alive, stack = set(), [k for k in keep if k in freed]
        while stack:
            y = stack.pop()
            if y in alive:
                continue
            alive.add(y)
            stack.extend(f for f in self.fin[y] if f in freed)
        return sum(self._cost(y) for y in freed if y not in alive)

    def _window(self, g: int) -> list[int]:
        """The ``max_tfo`` lowest-numbered nodes of g's transitive fanout (ascending: a closed window)."""
        heap = list(set(self.readers[g]))
        heapq.heapify(heap)
        seen, out = set(heap), []
        while heap and len(out) < self.max_tfo:
            x = heapq.heappop(heap)
            out.append(x)
            for r in self.readers[x]:
                if r not in seen:
                    seen.add(r)
                    heapq.heappush(heap, r)
        return out

    def _divisors(self, g: int) -> list[int]:
        """g's fanin to ``tfi_levels`` levels, then gates below g whose operands are all divisors."""
        divs: dict[int, None] = {}
        frontier = self.fin[g]
        for _ in range(self.tfi_levels):
            nxt = []
            for x in frontier:
                if x not in divs:
                    divs[x] = None
                    if x >= self.n:
                        nxt.extend(self.fin[x])
            frontier = nxt
            if len(divs) >= self.max_divs:
                break
        hits: dict[int, int] = {}
        for x in list(divs):
            for r in self.readers[x]:
                if r < g and r not in divs:
                    k = hits.get(r, 0) + 1
                    hits[r] = k
                    if k == len(self.fin[r]) and len(divs) < self.max_divs:
                        divs[r] = None
        return list(divs)[:self.max_divs]

    # -- one gate -------------------------------------------------------------------------
    def _simulate_window(self, window: list[int], g: int, gval: np.ndarray) -> dict[int, np.ndarray]:
        vals = {g: gval}
        n, values = self.n, self.values
        for w in window:
            i = w - n
            x, y = self.a[i], self.b[i]
            vals[w] = _APPLY[self.op[i]](vals[x] if x in vals else values[x], vals[y] if y in vals else values[y])
        return vals

    def try_gate(self, g: int) -> bool:
        """Find, prove and apply the best move for gate node g; False when none is proven."""
        i = g - self.n
        op = self.op[i]
        if _ONE_INPUT[op] or _CONST[op] or not (self.readers[g] or self.po[g]) or (self.po[g] and not self.sdc_moves):
            return False
        fanins = self.fin[g]
        window = self._window(g)
        inside = set(window)
        outs = [w for w in window if self.po[w] or any(r not in inside for r in self.readers[w])]
        observed = bool(self.po[g]) or any(r not in inside for r in self.readers[g])
        if observed:
            outs = [g] + outs
            if not self.sdc_moves:
                return False
        free_all = self._deref(fanins)
        divs = self._divisors(g)
        D = np.array(divs, dtype=np.int64)
        tried: set[tuple] = set()  # (op, x, y, inner) of refuted moves
        for _ in range(self.max_tries):
            cands = self._candidates(g, fanins, window, outs, observed, free_all, divs, D)
            cands = [t for t in cands if t[2:] not in tried]
            if not cands:
                return False
            gain, need, code, x, y, inner = cands[0]
            tried.add(cands[0][2:])
            if self._prove_and_apply(g, window, outs, code, x, y, need, inner):
                return True
        return False

    def _candidates(self, g: int, fanins: tuple[int, ...], window: list[int], outs: list[int], observed: bool,
                    free_all: set[int], divs: list[int], D: np.ndarray) -> list[tuple]:
        """Moves for g that hold on every simulation pattern of its care set, best (gain, then
        shallowest) first: (gain, new level, op, x, y, inner); y = -1: g becomes a copy/inverter
        of x (op A / NOT_A), x = -1: a constant (op FALSE / TRUE); inner = (op2, v, w, slot):
        g = op(x, h) with a new gate h = op2(v, w) placed at node ``slot`` of g's dying cone."""
        lv = self.level[g]
        gv = self.values[g]
        if observed:
            care = np.full_like(gv, _ONES)
        else:
            flipped = self._simulate_window(window, g, ~gv)
            care = np.zeros_like(gv)
            for o in outs:
                care |= flipped[o] ^ self.values[o]
        on, off = care & gv, care & ~gv
        cands: list[tuple[int, int, int, int, int, tuple[int, ...]]] = []
        if not on.any() or not off.any():  # constant on the care set
            gain = self._gain(free_all, ()) + 1 - (1 if self.po[g] else 0)
            if gain > 0:
                cands.append((gain, 1, _ops.TRUE if on.any() else _ops.FALSE, -1, -1, ()))
        V = self.values[D]
        same = ~((V ^ gv) & care).any(axis=1)
        comp = ~((~V ^ gv) & care).any(axis=1)
        for k in np.flatnonzero(same | comp).tolist():
            d, neg = divs[k], not bool(same[k])
            need = self.level[d] + (1 if neg and self.po[g] else 0)
            if self.depth_bound and need > lv:
                continue
            gain = self._gain(free_all, (d,)) + 1 - (1 if neg and self.po[g] else 0)
            if gain > 0:
                cands.append((gain, need, _ops.NOT_A if neg else _ops.A, d, -1, ()))
        pairs: list[tuple[set[int], list[int], list[int]]] = []  # (freed cone, first operands, second operands)
        if len(fanins) == 2 and fanins[0] != fanins[1]:
            for keep, drop in ((fanins[0], fanins[1]), (fanins[1], fanins[0])):
                free = self._deref([drop])
                if any(self._cost(y) for y in free):
                    pairs.append((free, [keep], [d for d in divs if d not in (keep, drop)]))
        if self.max_pair_divs > 1 and any(self._cost(y) for y in free_all):
            pair = [d for d in divs if d not in free_all and d not in fanins][:self.max_pair_divs]
            pairs.append((free_all, pair, pair))
        for free, first, second in pairs:
            if not first or not second:
                continue
            X = self.values[np.array(first, dtype=np.int64)]
            Y = self.values[np.array(second, dtype=np.int64)]
            hit = np.ones((len(first), len(second)), dtype=bool)
            codes = np.zeros(hit.shape, dtype=np.int64)
            for xb in (0, 1):
                for yb in (0, 1):
                    m = (X if xb else ~X)[:, None, :] & (Y if yb else ~Y)[None, :, :]
                    has_on, has_off = (m & on).any(axis=2), (m & off).any(axis=2)
                    hit &= ~(has_on & has_off)
                    codes |= has_on.astype(np.int64) << (3 - 2 * xb - yb)
            if first is second:
                hit &= np.triu(np.ones_like(hit), 1)
            for r, k in zip(*np.nonzero(hit)):
                x, y, code = first[int(r)], second[int(k)], int(codes[r, k])
                if _ops.IGNORES_A[code] or _ops.IGNORES_B[code]:
                    continue  # a copy or a constant: found above
                need = 1 + max(self.level[x], self.level[y])
                if self.depth_bound and need > lv:
                    continue
                gain = self._gain(free, (x, y))
                if gain > 0:
                    cands.append((gain, need, code, x, y, ()))
        cost_all = sum(self._cost(y) for y in free_all)
        if self.max_double_divs > 1 and cost_all >= 2:
            cands += self._double(g, free_all, cost_all, divs, on, off)
        cands.sort(key=lambda t: (-t[0], t[1]))
        return cands

    def _double(self, g: int, free_all: set[int], cost_all: int, divs: list[int], on: np.ndarray,
                off: np.ndarray) -> list[tuple]:
        """Two-gate moves g = op(u, op2(v, w)) over divisors outside g's cone (which then frees all
        of it but the gate reused for the new one). Screened on ``_SCREEN`` pattern words, then
        checked on all; O(p^3 x words) numpy work for p = ``max_double_divs`` divisors."""
        lv, level = self.level[g], self.level
        slot = max(free_all)  # a gate of the dying cone holds the new gate: ids stay topological
        P = [d for d in divs if d not in free_all][:self.max_double_divs]
        inner = [d for d in P if d < slot and (not self.depth_bound or level[d] <= lv - 2)]
        outer = [d for d in P if not self.depth_bound or level[d] <= lv - 1]
        if len(inner) < 2 or not outer:
            return []
        i1, i2 = np.triu_indices(len(inner), 1)
        Vi = self.values[np.array(inner, dtype=np.int64)]
        v1, v2 = Vi[i1], Vi[i2]
        H = np.concatenate([v1 & v2, v1 & ~v2, ~v1 & v2, ~(v1 | v2), v1 ^ v2])  # up to output negation
        h_code = np.repeat(np.array([_ops.AND, _ops.A_AND_NOT_B, _ops.NOT_A_AND_B, _ops.NOR, _ops.XOR]), i1.size)
        h_v, h_w = np.tile(i1, 5), np.tile(i2, 5)
        U = self.values[np.array(outer, dtype=np.int64)]

        def feasible(U, H, on, off):
            hit = np.ones((U.shape[0], H.shape[0]), dtype=bool)
            codes = np.zeros(hit.shape, dtype=np.int64)
            for ub in (0, 1):
                Um = U if ub else ~U
                on_u, off_u = Um & on, Um & off  # [p, W]
                for hb in (0, 1):
                    Hm = H if hb else ~H
                    has_on = (on_u[:, None, :] & Hm[None, :, :]).any(axis=2)
                    has_off = (off_u[:, None, :] & Hm[None, :, :]).any(axis=2)
                    hit &= ~(has_on & has_off)
                    codes |= has_on.astype(np.int64) << (3 - 2 * ub - hb)
            return hit, codes

        words = self.values.shape[1]
        screen = np.r_[0:min(_SCREEN, words), max(_SCREEN, words - _SCREEN):words]
        hit, _ = feasible(U[:, screen], H[:, screen], on[screen], off[screen])
        rows, cols = np.nonzero(hit)
        if rows.size == 0:
            return []
        keep_h = np.unique(cols)
        hit2, codes = feasible(U, H[keep_h], on, off)
        out = []
        for r, k in zip(*np.nonzero(hit2)):
            code, h = int(codes[r, k]), int(keep_h[k])
            u, v, w = outer[int(r)], inner[int(h_v[h])], inner[int(h_w[h])]
            if u in (v, w) or _ops.IGNORES_A[code] or _ops.IGNORES_B[code]:
                continue
            need = 1 + max(level[u], 1 + max(level[v], level[w]))
            if self.depth_bound and need > lv:
                continue
            out.append((cost_all - 1, need, code, u, -2, (int(h_code[h]), v, w, slot)))
            if len(out) >= 4 * self.max_tries:
                break
        return out

    # -- proof and application ----------------------------------------------------------------
    def _prove_and_apply(self, g: int, window: list[int], outs: list[int], code: int, x: int, y: int,
                         need: int, inner: tuple[int, ...] = ()) -> bool:
        n, var, s = self.n, self.var, self.solver
        clauses: list[list[int]] = []
        if x < 0:  # constant
            lit_g = self.true if code == _ops.TRUE else -self.true
            gval = np.full_like(self.values[g], _ONES if code == _ops.TRUE else 0)
        elif inner:  # g = op(x, h), h = op2(v, w) new
            code2, v2, w2, slot = inner
            lit_h = self._new_var()
            clauses += _gate_cnf(code2, var[v2], var[w2], lit_h)
            hval = _APPLY[code2](self.values[v2], self.values[w2])
            lit_g = self._new_var()
            clauses += _gate_cnf(code, var[x], lit_h, lit_g)
            gval = _APPLY[code](self.values[x], hval)
        elif y < 0:  # copy or inverter of x
            lit_g = -var[x] if code == _ops.NOT_A else var[x]
            gval = ~self.values[x] if code == _ops.NOT_A else self.values[x].copy()
        else:
            lit_g = self._new_var()
            clauses += _gate_cnf(code, var[x], var[y], lit_g)
            gval = _APPLY[code](self.values[x], self.values[y])
        new_lit = {g: lit_g}
        for w in window:
            i = w - n
            lw = self._new_var()
            la, lb = new_lit.get(self.a[i], var[self.a[i]]), new_lit.get(self.b[i], var[self.b[i]])
            clauses += _gate_cnf(self.op[i], la, lb, lw)
            new_lit[w] = lw
        act = self._new_var()
        differ = [-act]
        for o in outs:
            e = self._new_var()
            clauses += [[-e, var[o], new_lit[o]], [-e, -var[o], -new_lit[o]]]
            differ.append(e)
        clauses.append(differ)
        s.append_formula(clauses)
        s.conf_budget(self.conflict_budget)
        self.sat_calls += 1
        result = s.solve_limited(assumptions=[act])
        if result is True:
            self.sat_refuted += 1
            self._add_pattern(s.get_model())
        s.add_clause([-act])
        if result is not False:
            return False
        # proven: apply
        new_vals = self._simulate_window(window, g, gval)
        i = g - n
        old = self.fin[g]
        if inner:  # the cone dies first (x, v, w lie outside it), then its gate ``slot`` becomes h
            for f in old:
                self._unread(f, g)
            j = slot - n
            self.op[j], self.a[j], self.b[j] = code2, v2, w2
            self.fin[slot] = self._used(slot)
            for f in self.fin[slot]:
                self.readers[f].append(slot)
            self.level[slot] = 1 + max(self.level[v2], self.level[w2])
            self.values[slot] = hval
            var[slot] = lit_h
            self.op[i], self.a[i], self.b[i] = code, x, slot
            self.fin[g] = self._used(g)
            for f in self.fin[g]:
                self.readers[f].append(g)
        else:
            if x < 0:
                self.op[i], self.a[i], self.b[i] = code, 0, 0
            elif y < 0:
                self.op[i], self.a[i], self.b[i] = code, x, x
            else:
                self.op[i], self.a[i], self.b[i] = code, x, y
            self.fin[g] = self._used(g)
            for f in self.fin[g]:  # new uses first, so a kept operand never dies on the way
                self.readers[f].append(g)
            for f in old:
                self._unread(f, g)
        self.level[g] = need  # a copy counts as its source (collapse_passthrough / absorb_not remove it)
        for node, val in new_vals.items():
            self.values[node] = val
        for node, lit in new_lit.items():
            var[node] = lit
        self.accepted += 1
        return True

    def _unread(self, f: int, reader: int) -> None:
        """Drop one use of f by ``reader``; a gate left unread dies and drops its own uses."""
        stack = [(f, reader)]
        while stack:
            f, r = stack.pop()
            self.readers[f].remove(r)
            if f >= self.n and not self.readers[f] and not self.po[f]:
                stack.extend((h, f) for h in self.fin[f])

    def _add_pattern(self, model: list[int]) -> None:
        """Write a counterexample into the pattern words: every node's value on it is its literal's
        value in the model (the CNF follows the current circuit), so no simulation is needed."""
        lits = np.array(self.var, dtype=np.int64)
        val = np.asarray(model, dtype=np.int64)[np.abs(lits) - 1] > 0
        val ^= lits < 0
        word, bit = divmod(self.cex_slot % (64 * self.cex_words), 64)
        word = self.words - 1 - word
        self.cex_slot += 1
        mask = np.uint64(1 << bit)
        self.values[:, word] = (self.values[:, word] & ~mask) | (val.astype(np.uint64) << np.uint64(bit))

    def circuit(self) -> Circuit:
        """The current circuit (unswept: dead gates stay until the end)."""
        return self.c.replace(op=np.array(self.op, dtype=np.uint8), a=np.array(self.a, dtype=np.int32),
                              b=np.array(self.b, dtype=np.int32), layers=None)


def resub(circuit: Circuit, *, depth_bound: bool = True, words: int = 32, seed: int = 0, max_tfo: int = 24,
          tfi_levels: int = 3, max_divs: int = 64, max_pair_divs: int = 24, max_double_divs: int = 0,
          max_tries: int = 4, conflict_budget: int = 1000, sdc_moves: bool = False,
          max_gates: int = MAX_GATES) -> Circuit:
    """Don't-care resubstitution (see the module docstring): sweeps over the gates in topological
    order until one sweep changes nothing (so the pass is idempotent; at most ``_MAX_SWEEPS``).
    Function preserved exactly (every change is SAT-proved against the current circuit); with
    ``depth_bound`` no node's level grows. ``words`` x 64 simulation patterns; circuits above
    ``max_gates`` gates come back unchanged. Raises ImportError when python-sat is missing."""
    circuit.validate()
    if circuit.num_gates == 0 or circuit.num_gates > max_gates:
        return circuit
    options = dict(words=words, seed=seed, depth_bound=depth_bound, max_tfo=max_tfo, tfi_levels=tfi_levels,
                   max_divs=max_divs, max_pair_divs=max_pair_divs, max_double_divs=max_double_divs,
                   max_tries=max_tries, conflict_budget=conflict_budget, sdc_moves=sdc_moves)
    return until_unchanged(lambda c: _one_sweep(c, options), circuit, _MAX_SWEEPS)


def _one_sweep(circuit: Circuit, options: dict) -> Circuit:
    """One pass over the gates; the input itself when no move was proven."""
    rs = _Resub(circuit, **options)
    try:
        for node in range(circuit.num_inputs, circuit.num_nodes):
            rs.try_gate(node)
    finally:
        rs.solver.delete()
    if not rs.accepted:
        return circuit
    out = rs.circuit()
    out = sweep(circuit, out.op, out.a, out.b, out.outputs)
    return absorb_not(collapse_passthrough(out))


def resub_area(circuit: Circuit) -> Circuit:
    """``resub`` for area alone: the depth may grow."""
    return resub(circuit, depth_bound=False)
