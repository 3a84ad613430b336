"""Don't-care resubstitution (lgc.passes.resub): exact on random circuits (exhaustive), fires where a
window's observability don't-cares allow it, never deepens by default, counterexamples are real."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import need
from strategies import circuits
from lgc.ir import Circuit, depth, ops, random_layered_circuit, simulate
from lgc.passes import PIPELINES, equivalent, fraig, optimize, resub, resub_area, sat_solver_available
from lgc.passes.resub import _APPLY, _Resub


@pytest.fixture(autouse=True)
def _sat():
    need("sat", sat_solver_available())


def _planted() -> Circuit:
    """out1 = g & c with g = a & (b | ~c): where c = 0 nobody sees g, and where c = 1, g = a & b,
    which the circuit already computes (output 0). So g (two gates) is an existing signal on its
    care set, though not everywhere (fraig cannot merge it)."""
    a, b, c = 0, 1, 2
    return Circuit(3, op=[ops.AND, ops.A_OR_NOT_B, ops.AND, ops.AND],
                   a=[a, b, a, 5], b=[b, c, 4, c], outputs=[3, 6])


def test_planted_observability_dont_care_fires():
    c = _planted()
    assert fraig(c).num_gates == 4  # not equal everywhere: satisfiability don't-cares alone do nothing
    out = resub(c)
    assert out.num_gates == 2  # g and b | ~c go; out1 = (a & b) & c
    assert equivalent(c, out, method="exhaustive")
    assert depth(out) <= depth(c)


def test_gate_word_functions_match_the_op_tables():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 2**63, size=(2, 1, 4), dtype=np.int64).astype(np.uint64)
    for op in range(ops.NUM_OPS):
        want = ops.apply_words(np.array([op], dtype=np.uint8), x, y)
        assert np.array_equal(_APPLY[op](x, y), want), ops.OP_NAMES[op]


@settings(max_examples=40, deadline=None)
@given(circuits(max_inputs=10, max_gates=60), st.booleans())
def test_resub_is_exact_and_never_deepens(c, optimized):
    c = optimize(c, 2) if optimized else c
    out = resub(c)
    assert equivalent(c, out, method="exhaustive")
    assert depth(out) <= depth(c)
    assert out is c or out.num_gates < c.num_gates


@settings(max_examples=30, deadline=None)
@given(circuits(max_inputs=8, max_gates=60, heads=False), st.booleans(), st.booleans(), st.integers(0, 3))
def test_every_move_kind_is_exact(c, depth_bound, sdc, seed):
    """Two-gate moves, SDC-only moves, tiny windows and few patterns (many refuted candidates)."""
    c = optimize(c, 2)
    out = resub(c, depth_bound=depth_bound, sdc_moves=sdc, max_double_divs=12, words=1, max_tfo=4 + seed,
                seed=seed, max_tries=6)
    assert equivalent(c, out, method="exhaustive")
    if depth_bound:
        assert depth(out) <= depth(c)
    x = np.random.default_rng(seed).integers(0, 2, size=(64, c.num_inputs)).astype(bool)
    assert np.array_equal(simulate(c, x), simulate(out, x))


def test_layered_network_then_o3():
    c = random_layered_circuit(14, [48, 48, 32], num_classes=4, seed=3)
    o3 = optimize(c, 3)
    assert equivalent(c, o3, method="exhaustive")
    area = resub_area(optimize(c, 2))
    assert equivalent(c, area, method="exhaustive")


def test_counterexample_pattern_is_every_nodes_value():
    """A model of the solver (the CNF the pass keeps) gives every node's value on that input,
    the same as simulating it: the pass writes those values into its patterns unsimulated."""
    c = random_layered_circuit(10, [30, 30], num_classes=2, seed=1)
    rs = _Resub(c, words=2, seed=0, depth_bound=True, max_tfo=8, tfi_levels=2, max_divs=16, max_pair_divs=0,
                max_double_divs=0, max_tries=1, conflict_budget=100, sdc_moves=False)
    try:
        row = np.random.default_rng(2).integers(0, 2, size=c.num_inputs).astype(bool)
        assert rs.solver.solve(assumptions=[(i + 1) if v else -(i + 1) for i, v in enumerate(row)])
        rs._add_pattern(rs.solver.get_model())
    finally:
        rs.solver.delete()
    bit = ((rs.values[:, -1] >> np.uint64(0)) & np.uint64(1)).astype(bool)
    want = simulate(c.replace(outputs=np.arange(c.num_nodes, dtype=np.int32), head=None), row[None, :])[0]
    assert np.array_equal(bit, want.astype(bool))


def test_registered_in_o3_and_skips_big_circuits():
    assert "resub" in PIPELINES["O3"] and "resub_area" in PIPELINES["O3-area"]
    c = _planted()
    assert resub(c, max_gates=3) is c


class _Spy(_Resub):
    """Records the kind of every proven move."""

    def _prove_and_apply(self, g, window, outs, code, x, y, need, inner=()):
        ok = super()._prove_and_apply(g, window, outs, code, x, y, need, inner)
        if ok:
            self.kinds.append("constant" if x < 0 else "copy" if y == -1 else "two gates" if inner else "one gate")
        return ok


def test_every_move_kind_fires_and_is_exact():
    seen: set[str] = set()
    for seed in range(40):
        c = optimize(random_layered_circuit(8, [16, 16, 8], num_classes=2, seed=seed), 1)  # O2 rewrites most away
        rs = _Spy(c, words=4, seed=0, depth_bound=False, max_tfo=24, tfi_levels=3, max_divs=64, max_pair_divs=24,
                  max_double_divs=12, max_tries=4, conflict_budget=1000, sdc_moves=True)
        rs.kinds = []
        try:
            for g in range(c.num_inputs, c.num_nodes):
                rs.try_gate(g)
        finally:
            rs.solver.delete()
        if rs.kinds:
            assert equivalent(c, rs.circuit(), method="exhaustive"), (seed, rs.kinds)
        seen.update(rs.kinds)
        if len(seen) == 4:
            break
    assert seen == {"constant", "copy", "one gate", "two gates"}


@settings(max_examples=20, deadline=None)
@given(circuits(max_inputs=8, max_gates=80, heads=False))
def test_resub_reaches_its_fixed_point(c):
    out = resub(optimize(c, 2))
    assert resub(out) is out
