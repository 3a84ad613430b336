"""Equivalence checking of two circuits' raw output bits: random simulation, exhaustive, SAT miter.

- ``simulate``: random input words through ``simulate_words`` (64 samples per word). A difference
  is a counterexample (re-simulated, so a proof of difference); agreement proves nothing: the
  result is then *undecided* (``equal is None``, falsy, ``proven`` False). Cost O(gates * vectors / 64).
- ``exhaustive``: all 2^n input rows, packed (n <= 20 by default). A proof. Cost O(gates * 2^n / 64).
- ``sat``: a miter solved with python-sat: both circuits' live gates Tseitin-encoded from their
  truth tables (4 clauses per gate, generated as one numpy array), outputs XORed pairwise and
  ORed. SAT gives a counterexample from the model; UNSAT is a proof. Cost: the solver's.
- ``auto``: simulate first (a cheap disproof), then exhaustive when n <= 20, else SAT.

SAT proofs of large or arithmetic circuits can take very long: ``time_limit=`` (seconds) stops
the solver and raises :class:`EquivalenceTimeout` instead of answering (never a guess).

Circuits with different input or output counts, heads or input encoders are reported unequal
(``equal=False`` with a ``reason``, no counterexample) rather than raising.

The result (:class:`EquivalenceResult`) never claims more than was shown: ``equal`` is True only
after a proof (exhaustive or SAT), False only with a verified counterexample or a structural
mismatch, and None when random simulation found no difference (which is not a proof).
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any

import numpy as np

from lgc.ir import Circuit, ops as _ops, simulate_words

from .dead_gates import dead_gate_elimination

EXHAUSTIVE_MAX_INPUTS = 20
#: the solver when none is named: CaDiCaL, or Glucose under a time limit (python-sat cannot interrupt CaDiCaL)
DEFAULT_SOLVER, INTERRUPTIBLE_SOLVER = "cadical153", "glucose4"


class EquivalenceTimeout(TimeoutError):
    """The SAT solver reached ``time_limit`` without a proof or a counterexample."""


@dataclasses.dataclass
class EquivalenceResult:
    """What an equivalence check showed; truthy only when the circuits were *proven* equal.

    ``equal``: True — proven equal (``exhaustive``, ``sat``); False — proven different (a
    counterexample re-simulated on both circuits, or different interfaces, method ``structure``);
    None — undecided: random simulation (``method='simulate'``) found no difference, which is
    not a proof. ``proven``: ``equal is not None`` (a proof either way). ``counterexample``: a bool
    input row ``[num_inputs]`` on which the raw output bits differ (None unless ``equal is False``
    from a simulation, exhaustive or SAT check). ``method``: what decided (``simulate``,
    ``exhaustive``, ``sat``, ``structure``). ``reason``: a sentence saying why.
    ``differing_outputs``: output indices that differ on the counterexample.
    ``if equivalent(c1, c2)`` therefore means "proven equal"; to ask only "did simulation find a
    difference", test ``result.equal is False``.
    """

    equal: bool | None
    method: str
    counterexample: np.ndarray | None = None
    reason: str = ""
    differing_outputs: np.ndarray | None = None

    @property
    def proven(self) -> bool:
        """True when ``equal`` is decided (a proof of equality or of difference)."""
        return self.equal is not None

    def __bool__(self) -> bool:
        return self.equal is True

    def __repr__(self) -> str:
        if self.equal is None:
            return f"EquivalenceResult(undecided, method={self.method!r}, {self.reason or 'no difference found'}; not a proof)"
        if self.equal:
            return f"EquivalenceResult(equal, method={self.method!r}, proven)"
        ce = "" if self.counterexample is None else f", counterexample={self.counterexample.astype(int).tolist()}"
        return f"EquivalenceResult(NOT equal, method={self.method!r}, reason={self.reason!r}{ce})"


def _mismatch(c1: Circuit, c2: Circuit) -> str:
    if c1.num_inputs != c2.num_inputs:
        return f"input counts differ: {c1.num_inputs} vs {c2.num_inputs}"
    if c1.num_outputs != c2.num_outputs:
        return f"output counts differ: {c1.num_outputs} vs {c2.num_outputs}"
    if c1.head != c2.head:
        return f"heads differ: {c1.head} vs {c2.head}"
    if c1.input_encoder != c2.input_encoder:
        return "input encoders differ"
    return ""


def _row(words: np.ndarray, sample: int) -> np.ndarray:
    """Input bits of one sample of packed words uint64[n, W]."""
    return ((words[:, sample // 64] >> np.uint64(sample % 64)) & np.uint64(1)).astype(bool)


def _first_difference(w1: np.ndarray, w2: np.ndarray, inputs: np.ndarray, valid: int,
                      method: str) -> EquivalenceResult | None:
    diff = w1 ^ w2
    if valid % 64:
        diff[:, -1] &= np.uint64((1 << (valid % 64)) - 1)
    any_word = np.bitwise_or.reduce(diff, axis=0) if diff.shape[0] else np.zeros(diff.shape[1], np.uint64)
    hits = np.flatnonzero(any_word)
    if hits.size == 0:
        return None
    w = int(hits[0])
    word = int(any_word[w])
    bit = (word & -word).bit_length() - 1
    sample = 64 * w + bit
    outs = np.flatnonzero((diff[:, w] >> np.uint64(bit)) & np.uint64(1))
    return EquivalenceResult(False, method, _row(inputs, sample), f"outputs {outs[:8].tolist()} differ", outs)


def _simulate(c1: Circuit, c2: Circuit, vectors: int, seed: int) -> EquivalenceResult:
    n = c1.num_inputs
    words_total = max(1, (vectors + 63) // 64)
    rng = np.random.default_rng(seed)
    chunk = 64
    for start in range(0, words_total, chunk):
        w = min(chunk, words_total - start)
        inputs = rng.integers(0, 2**64, size=(n, w), dtype=np.uint64)
        if start == 0:  # the all-zero and all-one rows catch constant-input corner cases
            inputs[:, 0] &= ~np.uint64(3)
            inputs[:, 0] |= np.uint64(2)
        found = _first_difference(simulate_words(c1, inputs), simulate_words(c2, inputs), inputs, 64 * w,
                                  "simulate")
        if found is not None:
            return found
    return EquivalenceResult(None, "simulate",
                             reason=f"no difference on {64 * words_total} random input rows (equality not proven)")


def _exhaustive(c1: Circuit, c2: Circuit) -> EquivalenceResult:
    n = c1.num_inputs
    total = 1 << n
    words_total = (total + 63) // 64
    chunk = max(1, min(words_total, (1 << 24) // max(1, c1.num_nodes + c2.num_nodes)))
    low = np.array([0xAAAAAAAAAAAAAAAA, 0xCCCCCCCCCCCCCCCC, 0xF0F0F0F0F0F0F0F0, 0xFF00FF00FF00FF00,
                    0xFFFF0000FFFF0000, 0xFFFFFFFF00000000], dtype=np.uint64)
    for start in range(0, words_total, chunk):
        w_idx = np.arange(start, min(words_total, start + chunk), dtype=np.uint64)
        inputs = np.empty((n, w_idx.size), dtype=np.uint64)
        for i in range(n):  # one row per input bit: fine for n <= ~20
            if i < 6:
                inputs[i] = low[i]
            else:
                inputs[i] = np.where((w_idx >> np.uint64(i - 6)) & np.uint64(1), ~np.uint64(0), np.uint64(0))
        valid = min(64 * w_idx.size, total - 64 * start)
        if valid < 64 * w_idx.size:  # fewer than 64 rows in all (n < 6): clear the padding
            inputs[:, -1] &= np.uint64((1 << valid) - 1)
        found = _first_difference(simulate_words(c1, inputs), simulate_words(c2, inputs), inputs, valid,
                                  "exhaustive")
        if found is not None:
            return found
    return EquivalenceResult(True, "exhaustive", reason=f"equal on all {total} input rows")


def _gate_clauses(c: Circuit, first_var: int) -> tuple[np.ndarray, np.ndarray]:
    """Tseitin clauses for every gate of ``c`` (inputs are variables 1..n, shared) as an int64
    [4G, 3] array, and the variable of each node. For each input pattern (x, y) of a gate:
    (a != x) or (b != y) or (g == f(x, y))."""
    n, g = c.num_inputs, c.num_gates
    var = np.empty(c.num_nodes, dtype=np.int64)
    var[:n] = np.arange(1, n + 1)
    var[n:] = first_var + np.arange(g)
    va, vb, vg = var[c.a], var[c.b], var[n:]
    clauses = np.empty((g, 4, 3), dtype=np.int64)
    for k, (x, y) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        f = _ops.TRUTH[c.op, x, y].astype(bool)
        clauses[:, k, 0] = va if x == 0 else -va
        clauses[:, k, 1] = vb if y == 0 else -vb
        clauses[:, k, 2] = np.where(f, vg, -vg)
    return clauses.reshape(-1, 3), var


def sat_solver_available() -> str | None:
    """None when python-sat can be imported, else why not."""
    try:
        import pysat.solvers  # noqa: F401
    except ImportError as e:
        return f"python-sat is not installed ({e}); pip install 'lgc[sat]'"
    return None


def _require_sat(method: str) -> None:
    from lgc._optional import require
    require("pysat.solvers", extra="sat", purpose=f"equivalent(method={method!r}) on more than "
            f"{EXHAUSTIVE_MAX_INPUTS} inputs" if method == "auto" else f"equivalent(method={method!r})")


def _sat(c1: Circuit, c2: Circuit, solver: str, time_limit: float | None) -> EquivalenceResult:
    _require_sat("sat")
    from pysat.solvers import Solver

    c1, c2 = dead_gate_elimination(c1), dead_gate_elimination(c2)
    n = c1.num_inputs
    cl1, var1 = _gate_clauses(c1, n + 1)
    cl2, var2 = _gate_clauses(c2, n + 1 + c1.num_gates)
    o1, o2 = var1[c1.outputs], var2[c2.outputs]
    o1 = np.where(c1.output_negated, -o1, o1)   # a negated output is the complemented literal
    o2 = np.where(c2.output_negated, -o2, o2)
    d = n + 1 + c1.num_gates + c2.num_gates + np.arange(c1.num_outputs, dtype=np.int64)
    # d = o1 XOR o2
    xor = np.stack([np.stack([-o1, -o2, -d], 1), np.stack([o1, o2, -d], 1),
                    np.stack([o1, -o2, d], 1), np.stack([-o1, o2, d], 1)], 1).reshape(-1, 3)
    with Solver(name=solver) as s:
        s.append_formula(np.concatenate([cl1, cl2, xor]).tolist())
        s.add_clause(d.tolist())
        if time_limit is None:
            satisfiable = s.solve()
        else:
            timer = threading.Timer(time_limit, s.interrupt)
            timer.start()
            try:
                satisfiable = s.solve_limited(expect_interrupt=True)
            finally:
                timer.cancel()
            if satisfiable is None:
                raise EquivalenceTimeout(
                    f"the SAT miter ({c1.num_gates} + {c2.num_gates} gates, solver {solver}) found no proof and no "
                    f"counterexample within time_limit={time_limit:g} s; random simulation found no difference")
        if not satisfiable:
            return EquivalenceResult(True, "sat", reason="miter is unsatisfiable")
        model = np.asarray(s.get_model(), dtype=np.int64)
    values = np.zeros(max(n, int(np.abs(model).max()) if model.size else 0) + 1, dtype=bool)
    values[np.abs(model)] = model > 0
    row = values[1:n + 1]
    return EquivalenceResult(False, "sat", row, "the SAT miter found an input where outputs differ")


def _check_counterexample(c1: Circuit, c2: Circuit, result: EquivalenceResult) -> EquivalenceResult:
    """Re-simulate a counterexample on both circuits (one row), so a reported one is always real:
    a verified counterexample is a proof of difference, whichever method found it."""
    from lgc.ir import simulate
    x = result.counterexample[None, :]
    y1, y2 = simulate(c1, x, head=False)[0], simulate(c2, x, head=False)[0]
    outs = np.flatnonzero(y1 != y2)
    if outs.size == 0:  # pragma: no cover - would be a bug in this module
        raise AssertionError(f"{result.method} produced a counterexample that shows no difference")
    result.differing_outputs = outs
    result.reason = f"outputs {outs[:8].tolist()}{'...' if outs.size > 8 else ''} differ on the counterexample"
    return result


def equivalent(c1: Circuit, c2: Circuit, method: str = "auto", *, vectors: int = 1 << 14, seed: int = 0,
               max_exhaustive_inputs: int = EXHAUSTIVE_MAX_INPUTS, solver: str | None = None,
               time_limit: float | None = None, **unused: Any) -> EquivalenceResult:
    """Do ``c1`` and ``c2`` compute the same output bits for every input row?

    ``method``: 'simulate' (``vectors`` random rows: can disprove, never prove; equal is then
    None), 'exhaustive' (all rows, n <= ``max_exhaustive_inputs``), 'sat' (python-sat miter,
    ``solver`` name), or 'auto' (simulate, then exhaustive or SAT: always decided).
    Returns an :class:`EquivalenceResult` (truthy only when proven equal).
    Raw output bits are compared; heads, input counts, output counts and encoders must match,
    else the result is unequal with a ``reason`` and no counterexample.
    ``time_limit`` (seconds, SAT only): raise :class:`EquivalenceTimeout` when the solver has not
    decided by then; needs an interruptible solver (default then ``glucose4``; CaDiCaL is not).
    Raises ``lgc._optional.MissingDependency`` (an ImportError naming ``lgc[sat]``) when the SAT
    method is needed but python-sat is missing, before any simulation."""
    if unused:
        raise TypeError(f"unexpected keyword arguments {sorted(unused)}")
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    if solver is None:
        solver = DEFAULT_SOLVER if time_limit is None else INTERRUPTIBLE_SOLVER
    elif time_limit is not None and solver.startswith("cadical"):
        raise ValueError(f"solver {solver!r} cannot be interrupted, so time_limit cannot stop it; "
                         f"use e.g. solver={INTERRUPTIBLE_SOLVER!r}")
    if method not in ("auto", "simulate", "exhaustive", "sat"):
        raise ValueError(f"unknown method {method!r}; use 'auto', 'simulate', 'exhaustive' or 'sat'")
    for c in (c1, c2):
        if not isinstance(c, Circuit):
            raise TypeError(f"equivalent compares lgc.ir.Circuit objects, got {type(c).__name__}")
        c.validate()
    reason = _mismatch(c1, c2)
    if reason:
        return EquivalenceResult(False, "structure", None, reason)
    n = c1.num_inputs
    if method == "sat" or (method == "auto" and n > max_exhaustive_inputs):
        _require_sat(method)
    if method == "exhaustive" and n > max_exhaustive_inputs:
        raise ValueError(f"exhaustive check of {n} inputs is 2^{n} rows; limit is {max_exhaustive_inputs} "
                         f"(raise max_exhaustive_inputs=, or use method='sat')")
    if method in ("simulate", "auto"):
        result = _simulate(c1, c2, vectors, seed)
        if result.equal is False:
            return _check_counterexample(c1, c2, result)
        if method == "simulate":
            return result
        method = "exhaustive" if n <= max_exhaustive_inputs else "sat"
    result = _exhaustive(c1, c2) if method == "exhaustive" else _sat(c1, c2, solver, time_limit)
    return result if result.equal else _check_counterexample(c1, c2, result)
