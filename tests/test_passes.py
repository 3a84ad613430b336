"""Every pass and every optimisation level preserves the function, is idempotent, never grows the
circuit, keeps inputs/head/encoder/meta, and O2 leaves no pass-through, double inverter,
constant operand, duplicate or dead gate behind."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import need
from strategies import circuits
from lgc.ir import Circuit, GroupSumHead, ops, random_layered_circuit, simulate
from lgc.passes import (PASSES, PIPELINES, PassReport, absorb_not, run_pipeline, collapse_passthrough, constant_fold,
                        dead_gate_elimination, equivalent, merge_complements, optimize, sat_solver_available,
                        simplify_same_operand, structural_hash)
from lgc.passes._rewrite import live_gates

LEVELS = [0, 1, 2, 3]


def _batch(c: Circuit, seed: int, rows: int = 130) -> np.ndarray:
    return np.random.default_rng(seed).random((rows, c.num_inputs)) < 0.5


def _check_contract(before: Circuit, after: Circuit) -> None:
    after.replace().validate()  # a fresh, uncached check
    assert after.num_inputs == before.num_inputs
    assert after.num_outputs == before.num_outputs
    assert after.head == before.head
    assert after.input_encoder == before.input_encoder
    assert after.meta == before.meta
    assert after.num_gates <= before.num_gates


@given(circuits(max_gates=80, encoders=True), st.integers(0, 2**32 - 1))
def test_every_pass_preserves_function_and_is_idempotent(c, seed):
    x = _batch(c, seed)
    ref = simulate(c, x, head=False)
    for name, fn in PASSES.items():
        out = fn(c)
        _check_contract(c, out)
        np.testing.assert_array_equal(simulate(out, x, head=False), ref, err_msg=name)
        assert equivalent(c, out, method="exhaustive"), name  # n <= 12 inputs: a proof
        again = fn(out)
        assert again == out, f"{name} is not idempotent"


@given(circuits(max_gates=80, encoders=True), st.integers(0, 2**32 - 1))
def test_every_level_preserves_function_and_reaches_a_fixed_point(c, seed):
    x = _batch(c, seed)
    ref = simulate(c, x, head=False)
    for level in LEVELS:
        out, report = optimize(c, level=level, report=True)
        _check_contract(c, out)
        assert report.converged
        np.testing.assert_array_equal(simulate(out, x, head=False), ref, err_msg=f"O{level}")
        assert equivalent(c, out, method="exhaustive"), f"O{level}"
        assert optimize(out, level=level) == out, f"O{level} output is not a fixed point"
        for name in PIPELINES[f"O{level}"]:
            assert PASSES[name](out) == out, f"{name} still changes the O{level} result"


@settings(max_examples=15)
@given(circuits(max_inputs=24, min_inputs=13, max_gates=40))
def test_passes_proved_by_sat(c):
    need("sat", sat_solver_available())
    for name, fn in PASSES.items():
        res = equivalent(c, fn(c), method="sat")
        assert res.equal and res.proven and res.method == "sat", name
    for level in LEVELS:
        res = equivalent(c, optimize(c, level), method="sat")
        assert res.equal and res.proven, f"O{level}"


def _one_input_gate(c: Circuit) -> np.ndarray:
    return np.isin(c.op, [ops.A, ops.B, ops.NOT_A, ops.NOT_B])


@given(circuits(max_gates=80), st.sampled_from([2, 3]))
def test_o2_leaves_no_waste(c, level):
    o = optimize(c, level=level)
    n = o.num_inputs
    use_a, use_b = ~ops.IGNORES_A[o.op], ~ops.IGNORES_B[o.op]
    used = np.concatenate([o.a[use_a], o.b[use_b]])
    used_gates = used[used >= n] - n
    # no gate reads a copy, an inverter or a constant
    assert not _one_input_gate(o)[used_gates].any()
    assert not ops.IS_CONSTANT[o.op][used_gates].any()
    # no copies at all; inverters only feed outputs, straight from a non-inverter
    assert not np.isin(o.op, [ops.A, ops.B]).any()
    inv = np.flatnonzero(np.isin(o.op, [ops.NOT_A, ops.NOT_B]))
    src = np.where(o.op[inv] == ops.NOT_A, o.a[inv], o.b[inv])
    assert not (src >= n).any() or not _one_input_gate(o)[src[src >= n] - n].any()
    assert np.isin(n + inv, o.outputs).all()
    # no two-input gate reads one node twice; no dead gates; no structural duplicates
    two = ~ops.IGNORES_A[o.op] & ~ops.IGNORES_B[o.op]
    assert not (two & (o.a == o.b)).any()
    assert live_gates(o).all()
    assert structural_hash(o) == o
    if level == 3:
        assert merge_complements(o) == o
    assert np.unique(o.op[ops.IS_CONSTANT[o.op]]).size == (ops.IS_CONSTANT[o.op]).sum()


def test_passes_on_handmade_cases():
    # x0 AND TRUE -> x0; NOT(NOT(x1)) -> x1; XOR(x0, x0) -> FALSE; commuted AND duplicates merge
    c = Circuit(2, op=[15, 1, 12, 12, 6, 1, 1, 7], a=[0, 0, 1, 4, 0, 0, 1, 7],
                b=[0, 2, 1, 4, 0, 1, 0, 8], outputs=[3, 5, 6, 9])
    o = optimize(c, 2)
    assert equivalent(c, o, method="exhaustive")
    # outputs x0, x1, FALSE and OR(AND(x0, x1), AND(x1, x0)) = AND(x0, x1)
    assert o.num_gates == 2  # one FALSE constant and one AND
    assert sorted(o.op.tolist()) == [0, 1]
    assert o.outputs.tolist()[:2] == [0, 1]


def test_inverter_feeding_an_output_becomes_a_negated_literal():
    c = Circuit(2, op=[12, 10, 12, 1], a=[0, 1, 2, 2], b=[1, 0, 0, 1], outputs=[2, 3, 4, 5])
    o = absorb_not(c)
    assert equivalent(c, o, method="exhaustive")
    # outputs NOT x0 (twice: node 2 and node 3 = NOT_B(1, 0)) read x0 negated; NOT NOT x0 = x0
    assert o.outputs.tolist()[:3] == [0, 0, 0] and o.output_negated.tolist()[:3] == [True, True, False]
    assert (o.op == ops.NOT_A).sum() + (o.op == ops.NOT_B).sum() == 0 and o.num_gates == 1


def test_constant_fold_chain_and_pass_through_chain():
    # a chain of copies of x0 10 deep collapses; a chain of ANDs with TRUE folds
    g = 10
    c = Circuit(1, op=[3] * g, a=np.arange(g), b=np.zeros(g, int), outputs=[g])
    assert collapse_passthrough(c).num_gates == 0
    assert collapse_passthrough(c).outputs.tolist() == [0]
    c = Circuit(1, op=[15] + [1] * g, a=[0, 0] + list(range(2, g + 1)), b=[0] + [1] * g, outputs=[g + 1])
    f = collapse_passthrough(constant_fold(c))
    assert f.num_gates == 0 and f.outputs.tolist() == [0]
    c = Circuit(3, op=[1, 1], a=[0, 1], b=[2, 2], outputs=[3, 4])
    assert simplify_same_operand(c) == c
    assert dead_gate_elimination(c) is c


def test_ignored_operands_are_not_uses_and_normalised():
    # gate 3 = A(x0, x1) reads x1 only through an ignored operand; NOT_A(x0, x1) and NOT_A(x0, x2) merge
    c = Circuit(3, op=[7, 3, 12, 12], a=[1, 0, 0, 0], b=[2, 3, 1, 2], outputs=[4, 5, 6])
    o = dead_gate_elimination(c)
    assert o.num_gates == 4 - 1  # gate 0 (node 3) is dead: only an ignored operand read it
    s = structural_hash(c)
    assert s.num_gates == 2 and s.outputs[1] == s.outputs[2]


def test_layers_are_remapped_and_meta_kept():
    c = random_layered_circuit(16, [64, 64, 40], num_classes=4, seed=3)
    # O2's cleanup passes remap the hint; its rewrites (``*_small``) place new gates inside old
    # layers and drop it, as DESIGN allows
    o = run_pipeline(c, [p for p in PIPELINES["O2"] if not p.endswith("_small")])
    assert o.layers is not None and o.layers[0] == 0 and o.layers[-1] == o.num_gates
    assert (np.diff(o.layers) >= 0).all()
    assert o.meta == c.meta
    x = _batch(c, 0, 300)
    np.testing.assert_array_equal(simulate(o, x), simulate(c, x))
    # gates in one layer still read only earlier layers
    layer_of = np.searchsorted(o.layers, np.arange(o.num_gates), side="right") - 1
    for operand in (o.a, o.b):
        is_gate = operand >= o.num_inputs
        assert (layer_of[operand[is_gate] - o.num_inputs] < layer_of[is_gate]).all()


def test_report_prints_and_renders(monkeypatch):
    monkeypatch.setenv("LGC_DEBUG", "1")
    c = random_layered_circuit(10, [50, 50], num_classes=5, seed=1)
    o, rep = optimize(c, 2, report=True)
    assert isinstance(rep, PassReport)
    assert rep.gates_before == c.num_gates and rep.gates_after == o.num_gates
    assert {r.name for r in rep.runs} == set(PIPELINES["O2"])
    assert all(r.gates_after <= r.gates_before and r.seconds >= 0 for r in rep.runs)
    text = str(rep)
    assert "merge_complements" in text and "total" in text and "fixed point reached" in text
    assert "<table>" in rep._repr_html_()
    assert rep.unused_inputs == o.stats().unused_inputs.size and "unused" in text
    same, rep0 = optimize(c, 0, report=True)
    assert same is c and rep0.runs == [] and rep0.gates_after == c.num_gates


def test_bad_levels_and_inputs():
    c = random_layered_circuit(4, [8], seed=0)
    for bad in (-1, 4, 1.5, True, "2"):
        with pytest.raises((ValueError, TypeError)):
            optimize(c, bad)
    with pytest.raises(TypeError):
        optimize("not a circuit", 1)


def test_lgc_optimize_front_door():
    import lgc
    c = random_layered_circuit(10, [40, 40], num_classes=4, seed=2)
    assert lgc.optimize(c, level=1) == optimize(c, 1)


def test_empty_and_input_only_circuits():
    for c in (Circuit(0), Circuit(3, outputs=[2, 0]), Circuit(2, op=[6], a=[0], b=[1], outputs=[]),
              Circuit(1, op=[3], a=[0], b=[0], outputs=[1, 1], head=GroupSumHead(2))):
        for fn in PASSES.values():
            out = fn(c)
            _check_contract(c, out)
            assert equivalent(c, out, method="exhaustive")


def test_merge_complements_merges_and_nand_and_keeps_output_polarity():
    # AND(x0, x1), NAND(x1, x0), XOR(x0, x1), XNOR(x0, x1); OR(AND, NAND) = TRUE; outputs read NAND too
    c = Circuit(2, op=[1, 14, 6, 9, 7, 1], a=[0, 1, 0, 0, 2, 4], b=[1, 0, 1, 1, 3, 5], outputs=[6, 3, 7])
    o = merge_complements(c)
    assert equivalent(c, o, method="exhaustive")
    assert o.num_gates < c.num_gates
    # O2 hashes modulo complement too (it used to hash structurally only)
    assert optimize(c, 2).num_gates < run_pipeline(c, ("dead_gate_elimination", "constant_fold", "absorb_not",
                                                       "structural_hash")).num_gates
    assert equivalent(c, optimize(c, 3), method="exhaustive")


def test_wide_key_path_matches_packed_keys():
    # circuits beyond 2^30 nodes use a lexsort instead of packed uint64 keys: same classes
    from lgc.passes.structural_hash import _first_of_class
    rng = np.random.default_rng(0)
    op = rng.integers(0, 16, 5000).astype(np.uint8)
    a = rng.integers(0, 30, 5000).astype(np.int64)
    b = rng.integers(0, 30, 5000).astype(np.int64)
    np.testing.assert_array_equal(_first_of_class(op, a, b, True), _first_of_class(op, a, b, False))


@settings(max_examples=10)
@given(st.integers(0, 2**31 - 1), st.sampled_from([None, [1, 1, 1, 1, 1, 1, 3, 3, 1, 1, 3, 1, 3, 1, 1, 1]]))
def test_layered_circuits_every_level_proved_exhaustively(seed, op_weights):
    # difflogic-shaped wiring is duplicate-rich (few inputs, wide layers); op_weights biases to copies/inverters
    c = random_layered_circuit(12, [96, 96, 48], num_classes=4, seed=seed, op_weights=op_weights)
    for level in LEVELS:
        out = optimize(c, level)
        res = equivalent(c, out, method="exhaustive")
        assert res and res.proven, f"O{level}"


def test_run_pipeline_custom_and_errors():
    from lgc.passes import run_pipeline
    c = random_layered_circuit(10, [40, 40], seed=4)
    out, rep = run_pipeline(c, ["constant_fold", "dead_gate_elimination"], report=True)
    assert rep.pipeline == "custom" and rep.converged and equivalent(c, out, method="exhaustive")
    assert run_pipeline(c, "O2") == optimize(c, 2)
    with pytest.raises(ValueError, match="unknown pass"):
        run_pipeline(c, ["no_such_pass"])
    with pytest.raises(ValueError, match="unknown pipeline"):
        run_pipeline(c, "O9")


@settings(max_examples=60)
@given(circuits(max_inputs=8, max_gates=60))
def test_level_sort_orders_gates_by_level_and_keeps_everything_else(c):
    from lgc.ir import depth, levels
    from lgc.passes import level_sort
    out = level_sort(c)
    lv = levels(out)
    assert (np.diff(lv) >= 0).all()
    assert out.num_gates == c.num_gates and depth(out) == depth(c)
    assert sorted(out.op.tolist()) == sorted(c.op.tolist())
    assert equivalent(c, out, method="exhaustive")
    assert level_sort(out) is out


def test_o3_starts_from_o2_in_level_order_and_reports_the_prelude():
    from lgc.passes import PRELUDES, level_sort
    c = random_layered_circuit(12, [60, 40, 20], num_classes=2, seed=5)
    out, rep = optimize(c, level=3, report=True)
    names = [r.name for r in rep.runs]
    assert PRELUDES["O3"] == ("O2", ("level_sort",))
    first_o3 = names.index("level_sort")
    assert set(names[:first_o3]) <= set(PIPELINES["O2"]) and rep.converged
    rounds = [r.round for r in rep.runs]
    assert rounds == sorted(rounds) and rep.rounds == rounds[-1]
    assert rep.gates_before == c.num_gates and rep.gates_after == out.num_gates
    assert level_sort(out) is out and equivalent(c, out, method="exhaustive")
    assert run_pipeline(c, "O3") == out
