"""Gate semantics in one place: every per-op table outside lgc.ir.ops is derived from it or checked
against it here; liveness and fan-out have one implementation (lgc.ir.liveness) that the
schedulers and passes share; fuse_pairs (vectorised) equals the per-gate loop it replaced."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings

from lgc.backends import _cuda_tables, _schedule
from lgc.ir import fan_out, live_nodes, ops, random_layered_circuit
from lgc.ir.formats import aiger
from lgc.passes._rewrite import live_mask

from naive import fuse_pairs_loop
from strategies import circuits


def test_schedule_and_cuda_kind_tables_follow_ops():
    _schedule.check_schedule_semantics()
    np.testing.assert_array_equal(_cuda_tables.KIND_CODE, _schedule.KIND_OP)
    for op, (reads_b, sign) in _schedule._FOLLOW.items():
        for x in (0, 1):
            value = x if sign > 0 else 1 - x
            assert ops.TRUTH[op, x if not reads_b else 0, x if reads_b else 0] == value
            assert ops.TRUTH[op, x if not reads_b else 1, x if reads_b else 1] == value
    assert sorted(_schedule._FOLLOW) == [ops.A, ops.B, ops.NOT_B, ops.NOT_A]


def test_aiger_tables_follow_ops():
    """One AND (with complemented inputs/output) where the op is AND-like, three for XOR/XNOR,
    none for constants and one-operand ops."""
    for op in range(ops.NUM_OPS):
        nands, na, nb, no = (int(t[op]) for t in (aiger._NANDS, aiger._NEG_A, aiger._NEG_B, aiger._NEG_OUT))
        for x in (0, 1):
            for y in (0, 1):
                want = int(ops.TRUTH[op, x, y])
                if nands == 1:
                    got = no ^ ((x ^ na) & (y ^ nb))
                elif nands == 3:
                    got = no ^ ((1 - (x & (1 - y))) & (1 - ((1 - x) & y)))   # XNOR from three ANDs
                else:
                    assert ops.IGNORES_A[op] or ops.IGNORES_B[op], op
                    src = y if ops.IGNORES_A[op] else x
                    got = int(op == ops.TRUE) if ops.IS_CONSTANT[op] else no ^ src
                assert got == want, (op, x, y)


@settings(deadline=None)
@given(circuits(max_gates=120))
def test_one_liveness_and_fan_out(c):
    live = live_nodes(c)
    np.testing.assert_array_equal(live, live_mask(c))
    # reference: one backward pass in reverse gate order (operands come before their gate)
    ref = np.zeros(c.num_nodes, dtype=bool)
    ref[c.outputs] = True
    reads = np.zeros(c.num_nodes, dtype=np.int64)
    for i in range(c.num_gates - 1, -1, -1):
        node = c.num_inputs + i
        for used, src in ((not ops.IGNORES_A[c.op[i]], c.a[i]), (not ops.IGNORES_B[c.op[i]], c.b[i])):
            if used:
                reads[src] += 1
                ref[src] |= ref[node]
    np.testing.assert_array_equal(live, ref)
    np.testing.assert_array_equal(fan_out(c, count_outputs=False), reads)
    np.testing.assert_array_equal(fan_out(c), reads + np.bincount(c.outputs, minlength=c.num_nodes))
    roots = c.outputs[:1]
    some = live_nodes(c, roots=roots)
    assert (some <= live).all() and some[roots].all()


@settings(deadline=None)
@given(circuits(max_gates=200))
def test_fuse_pairs_equals_the_loop_it_replaced(c):
    for got, want in zip(_schedule.fuse_pairs(c), fuse_pairs_loop(c)):
        np.testing.assert_array_equal(got, want)


def test_fuse_pairs_equals_the_loop_on_layered_circuits():
    for seed in range(3):
        c = random_layered_circuit(40, [300, 200, 100, 60], num_classes=6, seed=seed)
        for got, want in zip(_schedule.fuse_pairs(c), fuse_pairs_loop(c)):
            np.testing.assert_array_equal(got, want)
        assert (_schedule.fuse_pairs(c)[3] >= 0).any()
