"""Restructuring (lgc.passes.restructure): the rewrites rerun on the AND/inverter form, kept only when
smaller and (by default) no deeper; every result checked exhaustively against the input."""
from __future__ import annotations

import importlib

import pytest

from lgc.ir import depth, random_layered_circuit, simulate
from lgc.passes import PASSES, equivalent, run_pipeline
from lgc.passes.manager import _REWRITE
from lgc.passes.restructure import as_aig

restructure_module = importlib.import_module("lgc.passes.restructure")  # the module, not the function


def rewritten(seed: int):
    """A small random net after the rewriting pipeline restructuring starts from (O3 before it)."""
    return run_pipeline(random_layered_circuit(6, [12, 10, 6], num_classes=2, seed=seed), _REWRITE)


def test_as_aig_keeps_the_function_head_and_interface():
    c = rewritten(38)
    a = as_aig(c)
    assert (a.num_inputs, a.num_outputs, a.head) == (c.num_inputs, c.num_outputs, c.head)
    assert set(a.op.tolist()) <= {0, 1, 2, 4, 8, 12, 15}   # ANDs with edge complements, constants, NOTs
    assert equivalent(c, a, method="exhaustive")


@pytest.mark.parametrize("seed", [38, 113, 132])
def test_restructure_finds_smaller_circuits_and_keeps_the_function(seed):
    c = rewritten(seed)
    r = PASSES["restructure"](c)
    assert r.num_gates < c.num_gates and depth(r) <= depth(c)
    assert equivalent(c, r, method="exhaustive")
    again = PASSES["restructure"](r)
    assert again is r or again == r        # idempotent: the last attempt already gained nothing


def test_depth_bound_only_area_mode_deepens():
    """Seed 84: the AIG form's rewrite saves a gate only one level deeper; the default keeps the input."""
    c = rewritten(84)
    bounded, area = PASSES["restructure"](c), PASSES["restructure_area"](c)
    assert depth(bounded) <= depth(c) and bounded.num_gates <= c.num_gates
    assert area.num_gates < bounded.num_gates and depth(area) > depth(c)
    assert equivalent(c, area, method="exhaustive") and equivalent(c, bounded, method="exhaustive")


def test_large_circuits_are_returned_unchanged(monkeypatch):
    c = rewritten(38)
    monkeypatch.setattr(restructure_module, "MAX_GATES", c.num_gates - 1)
    assert PASSES["restructure"](c) is c


def test_restructure_in_o3_matches_the_oracle():
    import numpy as np
    from lgc.passes import optimize
    c = random_layered_circuit(10, [40, 30, 12], num_classes=3, seed=7)
    x = np.random.default_rng(0).random((300, 10)) < 0.5
    o3 = optimize(c, 3)
    assert np.array_equal(simulate(o3, x), simulate(c, x))
    assert depth(o3) <= depth(c)
