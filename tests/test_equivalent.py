"""lgc.passes.equivalent: the result contract, each method, agreement between methods, a planted
single-gate change in a 100k-gate circuit, and clear errors."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import need
from strategies import circuits
from lgc.ir import Circuit, GroupSumHead, ops, random_layered_circuit, simulate
from lgc.passes import EquivalenceResult, EquivalenceTimeout, equivalent, optimize, sat_solver_available


def _shows_difference(c1: Circuit, c2: Circuit, row: np.ndarray) -> bool:
    x = np.asarray(row, dtype=bool)[None, :]
    assert x.shape == (1, c1.num_inputs)
    return bool((simulate(c1, x, head=False) != simulate(c2, x, head=False)).any())


def _mutate(c: Circuit, gate: int, new_op: int) -> Circuit:
    op = c.op.copy()
    op[gate] = new_op
    return c.replace(op=op)


def _planted(c: Circuit, rng: np.random.Generator, rows: int = 2048) -> tuple[Circuit, int]:
    """Negate one gate that simulation shows reaching an output (on ``rows`` random rows)."""
    x = rng.random((rows, c.num_inputs)) < 0.5
    ref = simulate(c, x, head=False)
    lo = c.num_gates // 3
    for gate in rng.integers(lo, 2 * lo, size=50):
        bad = _mutate(c, int(gate), int(ops.NEGATE_OUT[c.op[gate]]))
        if (simulate(bad, x, head=False) != ref).any():
            return bad, int(gate)
    raise AssertionError("no gate in 50 tries reaches an output")  # pragma: no cover


def test_planted_change_in_100k_gate_circuit_is_found():
    c = random_layered_circuit(256, [20_000] * 5, num_classes=10, seed=7)
    assert c.num_gates == 100_000
    bad, gate = _planted(c, np.random.default_rng(1))
    res = equivalent(c, bad)
    assert isinstance(res, EquivalenceResult)
    assert not res and res.equal is False and res.method == "simulate"
    assert res.proven  # the counterexample was re-simulated: a proof of difference
    assert res.counterexample is not None and res.counterexample.dtype == bool
    assert _shows_difference(c, bad, res.counterexample)
    assert res.differing_outputs is not None and res.differing_outputs.size > 0
    assert "differ" in res.reason and "NOT equal" in repr(res)


def test_planted_change_found_by_sat_with_a_real_counterexample():
    need("sat", sat_solver_available())
    c = random_layered_circuit(48, [400] * 4, seed=11)
    bad, _ = _planted(c, np.random.default_rng(2))
    res = equivalent(c, bad, method="sat")
    assert not res and res.method == "sat" and res.proven
    assert _shows_difference(c, bad, res.counterexample)


def test_equal_circuits_each_method():
    c = random_layered_circuit(14, [120, 120, 60], num_classes=6, seed=5)
    o = optimize(c, 2)
    for method in ("exhaustive", "auto"):
        res = equivalent(c, o, method=method)
        assert res and res.equal is True and res.counterexample is None and res.proven, method
    assert equivalent(c, o).method == "exhaustive"
    # random simulation can only fail to disprove: undecided, falsy, and it says so
    sim = equivalent(c, o, method="simulate")
    assert sim.equal is None and not sim and not sim.proven and sim.counterexample is None
    assert "undecided" in repr(sim) and "not a proof" in repr(sim) and "not proven" in sim.reason


def test_equal_wide_circuits_proved_by_sat():
    need("sat", sat_solver_available())
    c = random_layered_circuit(40, [200, 200, 100], num_classes=5, seed=9)
    o = optimize(c, 2)
    res = equivalent(c, o)  # 40 inputs: auto simulates, then proves with SAT
    assert res and res.method == "sat" and res.proven


@settings(max_examples=30)
@given(circuits(max_inputs=10, max_gates=40, heads=False), st.integers(0, 2**32 - 1))
def test_methods_agree_on_random_mutations(c, seed):
    rng = np.random.default_rng(seed)
    if c.num_gates == 0:
        return
    other = _mutate(c, int(rng.integers(c.num_gates)), int(rng.integers(16)))
    truth = equivalent(c, other, method="exhaustive")
    assert truth.proven
    if not truth:
        assert _shows_difference(c, other, truth.counterexample)
    sim = equivalent(c, other, method="simulate", vectors=256, seed=seed)
    assert sim.equal is not True  # simulation never claims a proof of equality
    assert sim.equal is None or not truth.equal  # simulation never invents a difference
    if sim.equal is False:  # a found difference is verified: a proof
        assert sim.proven and _shows_difference(c, other, sim.counterexample)
    if sat_solver_available() is None:
        sat = equivalent(c, other, method="sat")
        assert sat.equal == truth.equal
        if not sat:
            assert _shows_difference(c, other, sat.counterexample)


def test_heads_are_ignored_only_when_equal_and_raw_bits_compared():
    # swapping two outputs inside one group keeps the scores but changes the raw bits: not equal
    c = Circuit(2, op=[1, 7], a=[0, 0], b=[1, 1], outputs=[2, 3], head=GroupSumHead(1))
    swapped = c.replace(outputs=[3, 2])
    np.testing.assert_array_equal(simulate(c, np.eye(2, dtype=bool)), simulate(swapped, np.eye(2, dtype=bool)))
    res = equivalent(c, swapped)
    assert not res and _shows_difference(c, swapped, res.counterexample)


def test_mismatched_interfaces_are_unequal_with_a_reason():
    c = random_layered_circuit(6, [10], num_classes=2, seed=0)
    cases = {
        "input counts": random_layered_circuit(7, [10], num_classes=2, seed=0),
        "output counts": random_layered_circuit(6, [12], num_classes=2, seed=0),
        "heads": c.replace(head=GroupSumHead(5)),
    }
    for why, other in cases.items():
        res = equivalent(c, other)
        assert not res and res.counterexample is None and why in res.reason and res.method == "structure"


def test_bad_arguments():
    c = random_layered_circuit(24, [10], seed=0)
    with pytest.raises(ValueError, match="unknown method"):
        equivalent(c, c, method="bdd")
    with pytest.raises(ValueError, match="2\\^24"):
        equivalent(c, c, method="exhaustive")
    with pytest.raises(TypeError):
        equivalent(c, "x")


def test_missing_python_sat_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pysat.solvers", None)
    monkeypatch.setitem(sys.modules, "pysat", None)
    c = random_layered_circuit(30, [20], seed=0)
    with pytest.raises(ImportError, match="python-sat"):
        equivalent(c, c, method="sat")
    with pytest.raises(ImportError, match="python-sat"):
        equivalent(c, c)  # auto needs SAT beyond 20 inputs
    sim = equivalent(c, c, method="simulate")
    assert sim.equal is None and not sim.proven  # no SAT needed, and no claim of a proof


def _multiplier(width: int, swapped: bool) -> Circuit:
    """An array multiplier of two ``width``-bit numbers (inputs x then y, outputs the product's
    bits); ``swapped`` builds y * x. Proving x*y == y*x is notoriously hard for SAT solvers."""
    op, a, b = [], [], []

    def gate(code: int, u: int, v: int) -> int:
        op.append(code)
        a.append(u)
        b.append(v)
        return 2 * width + len(op) - 1

    x, y = list(range(width)), list(range(width, 2 * width))
    if swapped:
        x, y = y, x
    row = [gate(ops.AND, x[j], y[0]) for j in range(width)]
    product = [row[0]]
    carry_in = row[1:]
    for i in range(1, width):
        pp = [gate(ops.AND, x[j], y[i]) for j in range(width)]
        carry, sums = None, []
        for j in range(width):
            u = pp[j]
            v = carry_in[j] if j < len(carry_in) else None
            if v is None and carry is None:
                sums.append(u)
                continue
            if v is None or carry is None:
                w = v if v is not None else carry
                sums.append(gate(ops.XOR, u, w))
                carry = gate(ops.AND, u, w)
                continue
            t = gate(ops.XOR, u, v)
            sums.append(gate(ops.XOR, t, carry))
            carry = gate(ops.OR, gate(ops.AND, u, v), gate(ops.AND, t, carry))
        product.append(sums[0])
        carry_in = sums[1:] + [carry]
    product += carry_in
    return Circuit(2 * width, op, a, b, product).validate()


def test_sat_time_limit_raises_instead_of_guessing():
    need("sat", sat_solver_available())
    small = _multiplier(3, False), _multiplier(3, True)
    x = np.random.default_rng(0).random((64, 6)) < 0.5
    assert np.array_equal(simulate(small[0], x), simulate(small[1], x))
    assert equivalent(*small, method="sat", time_limit=30).proven
    hard = _multiplier(12, False), _multiplier(12, True)
    with pytest.raises(EquivalenceTimeout, match="time_limit=0.5"):
        equivalent(*hard, time_limit=0.5)          # auto: simulation agrees, then SAT is stopped
    with pytest.raises(ValueError, match="cannot be interrupted"):
        equivalent(*small, method="sat", solver="cadical153", time_limit=1)
    with pytest.raises(ValueError, match="positive"):
        equivalent(*small, method="sat", time_limit=0)
