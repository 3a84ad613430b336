"""Output polarity, the minimum-circuit database and exact cut rewriting: exact on random circuits
(exhaustive for few inputs), never deeper by default, and the database minimal (Knuth's counts and
a brute-force enumeration of every circuit of up to 3 gates)."""
from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings, strategies as st

from strategies import circuits
from lgc.ir import Circuit, GroupSumHead, depth, ops, random_layered_circuit, simulate
from lgc.passes import cut_rewrite, cut_rewrite_area, equivalent, optimize, output_polarity
from lgc.passes import npn4
from lgc.passes.cut_rewrite import _PAD, enumerate_cuts


def test_database_covers_every_function_with_knuths_costs():
    classes = npn4.load_classes()  # checks each class circuit computes its truth table
    assert len(classes) == 222
    cost, circ = npn4.table()
    k = npn4.knuth_cost(cost)
    assert tuple(np.bincount(k, minlength=8)) == npn4.KNUTH_FUNCTIONS_BY_COST  # TAOCP 7.1.2
    by_class = np.bincount([len(g) for _, g in classes], minlength=8)
    assert tuple(by_class) == (2, 2, 5, 20, 34, 75, 72, 12)  # Knuth's 222 classes by cost
    # every function's circuits (each variant) compute it (all 65,536, simulated on 16-bit truth tables)
    rows = np.arange(1 << 16)
    for v in range(circ.shape[1]):
        t = np.zeros((1 << 16, 4 + npn4.MAX_GATES), dtype=np.uint16)
        t[:, :4] = npn4.VAR_TT
        for j in range(npn4.MAX_GATES):
            op, a, b = circ[:, v, j, 0], circ[:, v, j, 1], circ[:, v, j, 2]
            t[:, 4 + j] = npn4.gate_tt(op, t[rows, a], t[rows, b])
        last = np.where(cost > 0, 3 + cost.astype(np.int64), 0)
        got = t[rows, last]
        literal = cost == 0
        want = rows.astype(np.uint16)
        assert (got[~literal] == want[~literal]).all()
        assert set(np.flatnonzero(literal)) == {0, *(int(x) for x in npn4.VAR_TT)}


def test_database_is_minimal_against_brute_force_up_to_three_gates():
    """Enumerate every circuit of up to 3 gates (all 16 ops, any operand pair): the functions they
    reach (output negation free) are exactly those of Knuth cost <= 3 in the database."""
    ops_ = np.arange(16)

    def extend(nodes: np.ndarray) -> np.ndarray:  # nodes uint16[R, m] -> new gate tts [R, pairs * 16]
        m = nodes.shape[1]
        pairs = np.array(list(itertools.combinations(range(m), 2)))
        ta, tb = nodes[:, pairs[:, 0]], nodes[:, pairs[:, 1]]
        return npn4.gate_tt(ops_[None, None, :], ta[:, :, None], tb[:, :, None]).reshape(nodes.shape[0], -1)

    level = np.tile(npn4.VAR_TT, (1, 1))
    reach = {0: {0, *(int(v) for v in npn4.VAR_TT)}}
    seen = set(reach[0])
    k = npn4.knuth_cost(npn4.table()[0])
    for c in (1, 2, 3):
        new = extend(level)
        seen |= set(np.unique(new).tolist())
        closed = seen | {x ^ 0xFFFF for x in seen}
        assert closed == set(np.flatnonzero(k <= c).tolist()), f"cost {c}"
        if c < 3:
            level = np.concatenate([np.repeat(level, new.shape[1], axis=0), new.reshape(-1, 1)], axis=1)


def test_output_polarity_removes_output_inverters():
    # outputs read NOT(AND) while an OR also reads the AND: the AND becomes a NAND, the OR absorbs it;
    # NOT input 1 becomes a negated output literal (no gate can compute it)
    c = Circuit(3, op=[ops.AND, ops.OR, ops.NOT_A, ops.NOT_A], a=[0, 3, 3, 1], b=[1, 2, 3, 1],
                outputs=[5, 4, 6])
    out = output_polarity(c)
    assert out.num_gates == c.num_gates - 2
    assert out.output_negated.tolist() == [False, False, True] and out.outputs[2] == 1
    assert equivalent(c, out, method="exhaustive")
    assert depth(out) <= depth(c)
    # both polarities needed: the inverter becomes a negated literal on the AND
    c2 = Circuit(2, op=[ops.AND, ops.NOT_A], a=[0, 2], b=[1, 2], outputs=[2, 3])
    out2 = output_polarity(c2)
    assert out2.num_gates == 1 and out2.outputs.tolist() == [2, 2] and out2.output_negated.tolist() == [False, True]
    assert equivalent(c2, out2, method="exhaustive")
    # a negated output needed only negated: the gate is flipped and the literal turns positive
    c3 = Circuit(2, op=[ops.AND], a=[0], b=[1], outputs=[2], output_negated=[True])
    out3 = output_polarity(c3)
    assert out3.op.tolist() == [ops.NAND] and out3.output_negated.tolist() == [False]
    assert equivalent(c3, out3, method="exhaustive")
    assert output_polarity(out3) is out3


def test_cut_rewrite_finds_minimum_circuits():
    # XOR written as (a & ~b) | (~a & b), and a 3-input majority as five gates
    c = Circuit(3, op=[ops.A_AND_NOT_B, ops.NOT_A_AND_B, ops.OR, ops.AND, ops.AND, ops.AND, ops.OR, ops.OR],
                a=[0, 0, 3, 0, 0, 1, 6, 8], b=[1, 1, 4, 1, 2, 2, 7, 9], outputs=[5, 10])
    out = cut_rewrite_area(c)
    assert equivalent(c, out, method="exhaustive")
    assert out.num_gates < c.num_gates
    assert out.num_gates == 1 + 4  # XOR, and MAJ(a, b, c) has cost 4


@settings(max_examples=60)
@given(circuits(max_inputs=6, max_gates=120), st.booleans())
def test_cut_rewrite_exact_and_depth_bounded(c, area):
    base = optimize(c, level=2)
    out = (cut_rewrite_area if area else cut_rewrite)(base)
    assert out.num_gates <= base.num_gates
    assert equivalent(c, out, method="exhaustive")
    if not area:
        assert depth(out) <= depth(base)
    assert (cut_rewrite_area if area else cut_rewrite)(out) == out


def test_cuts_truth_tables_match_simulation():
    c = random_layered_circuit(8, [30, 30, 20], seed=3)
    leaves, tts, freed, ncut = enumerate_cuts(c)
    rng = np.random.default_rng(0)
    x = rng.random((256, c.num_inputs)) < 0.5
    vals = simulate(c.replace(outputs=np.arange(c.num_nodes), head=None), x, head=False).astype(np.int64)
    for node in rng.choice(np.arange(c.num_inputs, c.num_nodes), size=min(40, c.num_gates), replace=False):
        for s in range(int(ncut[node])):
            lv = [int(v) for v in leaves[node, s] if v != _PAD]
            m = sum(vals[:, leaf] << i for i, leaf in enumerate(lv))
            np.testing.assert_array_equal((int(tts[node, s]) >> m) & 1, vals[:, node])


def test_o3_keeps_depth_and_area_mode_may_not():
    c = random_layered_circuit(16, [64, 64, 64, 10], num_classes=2, seed=1)
    o2 = optimize(c, level=2)
    o3, rep = optimize(c, level=3, report=True)
    assert "cut_rewrite" in {r.name for r in rep.runs}
    assert o3.num_gates <= o2.num_gates and depth(o3) <= depth(c)
    area = optimize(c, level=3, area_only=True)
    assert area.num_gates <= o2.num_gates
    for out in (o3, area):
        assert equivalent(c, out, method="sat")


def test_extract_pairs_shares_a_pair_between_and_trees():
    from lgc.passes import extract_pairs
    # (a & c) & b and NOT((b | d) | NOT a) = (NOT b & NOT d) & a: the pairs differ in b's polarity, so
    # only (a & c) & b and (b & d) & a share one: a & b
    c = Circuit(4, op=[ops.AND, ops.AND, ops.AND, ops.AND, ops.NOR, ops.NOT_A_AND_B],
                a=[0, 4, 1, 6, 1, 8], b=[2, 1, 3, 0, 3, 0], outputs=[5, 7, 9])
    out = extract_pairs(c)
    assert equivalent(c, out, method="exhaustive")
    assert out.num_gates == c.num_gates - 1
    assert depth(out) <= depth(c)


def test_fraig_merges_functionally_equal_gates():
    from lgc.passes import fraig
    # a ^ b written twice in different structures: a ^ b, and (a | b) & ~(a & b)
    c = Circuit(2, op=[ops.XOR, ops.OR, ops.NAND, ops.AND, ops.AND],
                a=[0, 0, 0, 3, 2], b=[1, 1, 1, 4, 5], outputs=[6, 5])
    out = fraig(c)
    assert equivalent(c, out, method="exhaustive")
    assert out.num_gates == 1  # the second XOR's three gates and the AND of the two XORs (= a ^ b too) go
