"""Refactoring (lgc.passes.refactor): ISOP and factoring are exact, the pass preserves the function
(exhaustively on small random circuits, by SAT on a wider one), never deepens a node unless asked,
and finds the factored form a 4-leaf cut cannot see; O2 rewrites only up to its size bound."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings, strategies as st

from strategies import circuits
from lgc.ir import Circuit, depth, ops, random_layered_circuit
from lgc.passes import PIPELINES, equivalent, optimize, refactor, refactor_area, run_pipeline
from lgc.passes import manager
from lgc.passes.refactor import _masks, factor, isop


def _table(form, k: int) -> int:
    """Truth table of a factored form over k variables (a second, independent evaluator)."""
    rows = range(1 << k)
    if form[0] == "const":
        return (1 << (1 << k)) - 1 if form[1] else 0
    if form[0] == "lit":
        v, neg = form[1] >> 1, form[1] & 1
        return sum(1 << m for m in rows if ((m >> v) & 1) != neg)
    tables = [_table(ch, k) for ch in form[1]]
    out = tables[0]
    for t in tables[1:]:
        out = out & t if form[0] == "and" else out | t
    return out


@settings(max_examples=200)
@given(st.integers(1, 6), st.data())
def test_isop_covers_exactly_and_factoring_keeps_the_function(k, data):
    masks, full = _masks(k)
    f = data.draw(st.integers(0, full))
    cubes, cover = isop(f, f, k, masks, full)
    assert cover == f
    sop = 0
    for cube in cubes:
        t = full
        for lit in cube:
            t &= masks[lit >> 1] if not lit & 1 else ~masks[lit >> 1] & full
        sop |= t
    assert sop == f
    # irredundant: no cube is covered by the others
    for i in range(len(cubes)):
        rest = factor(cubes[:i] + cubes[i + 1:])
        assert _table(rest, k) != f
    assert _table(factor(cubes), k) == f


def _wide_cone(outputs=(11,)) -> Circuit:
    """(a & b) | (a & c) | (a & d) | (a & e): 7 gates over 5 leaves; a & (b | c | d | e) takes 4."""
    ops_ = [ops.AND, ops.AND, ops.AND, ops.AND, ops.OR, ops.OR, ops.OR]
    return Circuit(5, op=ops_, a=[0, 0, 0, 0, 5, 7, 9], b=[1, 2, 3, 4, 6, 8, 10], outputs=list(outputs))


def test_refactor_factors_a_wide_cone():
    c = _wide_cone()
    out = refactor(c)
    assert equivalent(c, out, method="exhaustive")
    assert out.num_gates == 4
    assert depth(out) <= depth(c)


def test_refactor_keeps_shared_gates_and_reuses_existing_ones():
    # the same cone, but an output also reads a & b: that gate stays
    c = _wide_cone(outputs=(11, 5))
    out = refactor(c)
    assert equivalent(c, out, method="exhaustive")
    assert out.num_gates < c.num_gates


@settings(max_examples=60)
@given(circuits(max_inputs=8, max_gates=120), st.booleans())
def test_refactor_exact_depth_bounded_and_idempotent(c, area):
    base = optimize(c, level=1)
    fn = refactor_area if area else refactor
    out = fn(base)
    assert out.num_gates <= base.num_gates
    assert equivalent(c, out, method="exhaustive")
    if not area:
        assert depth(out) <= depth(base)
    assert fn(out) == out


@settings(max_examples=40)
@given(st.integers(0, 2**31), st.sampled_from([4, 6, 8, (6, 8)]), st.booleans())
def test_refactor_exact_on_layered_circuits(seed, k, area):
    # random layered logic after O1: most of these give refactoring something to do
    c = optimize(random_layered_circuit(8, [40, 30, 20, 8], num_classes=2, seed=seed), level=1)
    out = refactor(c, k=k, depth_bound=not area)
    assert out.num_gates <= c.num_gates
    assert equivalent(c, out, method="exhaustive")
    if not area:
        assert depth(out) <= depth(c)


@pytest.mark.parametrize("k", [4, 6, 8, 10])
def test_refactor_on_a_wider_circuit_proved_by_sat(k):
    pytest.importorskip("pysat")
    c = optimize(random_layered_circuit(24, [120, 120, 80, 40], num_classes=4, seed=k), level=1)
    out = refactor(c, k=k)
    assert out.num_gates < c.num_gates and depth(out) <= depth(c)
    assert equivalent(c, out, method="sat")


def test_refactor_rejects_bad_cut_sizes_and_skips_large_circuits():
    c = random_layered_circuit(8, [20, 20], seed=0)
    for bad in (1, 13, (6, 0), (), True, 6.0):
        with pytest.raises(ValueError):
            refactor(c, k=bad)
    assert refactor(c, max_gates=c.num_gates - 1) is c


def test_o2_rewrites_only_up_to_its_size_bound(monkeypatch):
    c = _wide_cone()
    cleanup = [p for p in PIPELINES["O2"] if not p.endswith("_small")]
    assert optimize(c, 2).num_gates == 4 < run_pipeline(c, cleanup).num_gates == 7
    monkeypatch.setattr(manager, "O2_REWRITE_MAX_GATES", 6)
    assert optimize(c, 2) == run_pipeline(c, cleanup)


def test_every_pipeline_lists_known_passes():
    for name, passes in PIPELINES.items():
        assert all(p in manager.PASSES for p in passes), name
    assert set(itertools.chain(PIPELINES["O2"])) >= {"refactor_small", "merge_complements"}
    assert "refactor" in PIPELINES["O3"] and "refactor_area" in PIPELINES["O3-area"]
