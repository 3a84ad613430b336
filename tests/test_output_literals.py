"""Negated outputs (``Circuit.output_negated``, free output inverters): the IR's invariants, the
oracle, every file format, equivalence checking and the pass that creates them (output polarity).
Backends are covered by their own oracle tests, whose circuits (``strategies.circuits``, the C and
LLVM export cases) include negated outputs."""
from __future__ import annotations

import hashlib
import io
import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from conftest import need
from strategies import circuits

from lgc.ir import Circuit, CircuitError, GroupSumHead, from_networkx, ops, serialize, simulate, to_networkx
from lgc.ir.formats import FormatError, aiger, blif, text
from lgc.passes import equivalent, optimize, output_polarity, sat_solver_available


def _net() -> Circuit:
    # out0 = x0 AND x1, out1 = NOT(x0 AND x1), out2 = NOT x2, out3 = x0 XOR x2
    return Circuit(3, op=[ops.AND, ops.XOR], a=[0, 0], b=[1, 2], outputs=[3, 3, 2, 4],
                   output_negated=[False, True, True, False], head=GroupSumHead(2, 1.0))


def test_simulate_complements_negated_outputs_and_the_head_counts_one_minus_y():
    x = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=bool)
    bits = simulate(_net(), x, head=False).astype(int)
    a, b, c = x[:, 0].astype(int), x[:, 1].astype(int), x[:, 2].astype(int)
    assert bits.tolist() == np.stack([a & b, 1 - (a & b), 1 - c, a ^ c], axis=1).tolist()
    assert simulate(_net(), x).tolist() == np.stack([np.ones_like(a), (1 - c) + (a ^ c)], axis=1).tolist()


@pytest.mark.parametrize("neg, match", [
    ([True, False], "has 2 entries, the circuit has 4 outputs"),
    ([0.5, 0, 0, 1], "1-D array of booleans"),
    ([[True, False, True, False]], "1-D array of booleans"),
    ([0, 2, 0, 1], "1-D array of booleans"),
])
def test_bad_output_negated_is_a_clear_error(neg, match):
    c = _net()
    with pytest.raises(CircuitError, match=match):
        Circuit(3, c.op, c.a, c.b, c.outputs, output_negated=neg)


def test_replace_keeps_polarity_by_position_and_refuses_an_ambiguous_resize():
    c = _net()
    moved = c.replace(outputs=[3, 3, 2, 4])
    assert moved.output_negated.tolist() == [False, True, True, False]
    with pytest.raises(CircuitError, match="give output_negated too"):
        c.replace(outputs=[3, 4])
    assert c.replace(outputs=[3, 4], output_negated=[True, False]).num_negated_outputs == 1
    plain = c.replace(output_negated=None)
    assert plain.replace(outputs=[3]).num_outputs == 1   # nothing negated: any resize is fine


def test_identity_hash_and_equality_see_the_polarity():
    c = _net()
    plain = c.replace(output_negated=None)
    old_style = Circuit(3, c.op, c.a, c.b, c.outputs, head=c.head)
    assert plain == old_style and plain.content_hash() == old_style.content_hash()  # no negation: hash as before
    assert c != plain and c.content_hash() != plain.content_hash()
    assert "2 negated" in repr(c) and "2 negated" in str(c.stats())


@settings(max_examples=80)
@given(circuits(max_inputs=8, max_gates=40))
def test_with_output_inverters_is_the_same_function_without_literals(c):
    plain = c.with_output_inverters()
    assert not plain.output_negated.any()
    assert plain.num_gates == c.num_gates + np.unique(c.outputs[c.output_negated]).size
    assert equivalent(c, plain, method="exhaustive")
    if not c.output_negated.any():
        assert plain is c


def test_with_output_inverters_extends_the_layers():
    c = _net().replace(layers=[0, 1, 2])
    plain = c.with_output_inverters()
    assert plain.layers.tolist() == [0, 1, 2, 4] and plain.validate() is plain


@settings(max_examples=60)
@given(circuits(max_inputs=8, max_gates=40, encoders=True))
def test_every_format_round_trips_the_polarity(c):
    assert serialize.loads(serialize.dumps(c)) == c
    assert text.loads(text.dumps(c)) == c
    assert blif.loads(blif.dumps(c)) == c and blif.parse(blif.dumps(c)) == c
    assert from_networkx(to_networkx(c)).output_negated.tolist() == c.output_negated.tolist()
    if c.num_outputs:
        back = aiger.loads(aiger.dumps(c, binary=True))   # AND/inverter form: same function
        assert np.array_equal(simulate(back, _all_rows(c), head=False), simulate(c, _all_rows(c), head=False))


def _all_rows(c: Circuit) -> np.ndarray:
    n = c.num_inputs
    return ((np.arange(1 << n)[:, None] >> np.arange(n)) & 1).astype(bool)


def test_aiger_writes_complemented_output_literals():
    lines = aiger.dumps(_net(), binary=False).decode().splitlines()
    m, i, latches, o, ands = map(int, lines[0].split()[1:6])
    out_lits = [int(v) for v in lines[1 + i:1 + i + o]]
    and_x0x1 = 2 * (i + 1)                     # the first AND's variable
    assert out_lits[0] == and_x0x1 and out_lits[1] == and_x0x1 + 1 and out_lits[2] == 2 * 3 + 1


def test_text_and_blif_show_the_negation():
    assert "outputs 3 ~3 ~2 4" in text.dumps(_net())
    assert ".names n3 y1\n0 1\n" in blif.dumps(_net())


@pytest.mark.parametrize("outputs, match", [("~~3", "malformed"), ("~x", "malformed"), ("~9", "out of range")])
def test_bad_negated_output_in_text_names_the_line(outputs, match):
    with pytest.raises(FormatError, match=match) as e:
        text.loads(f"lgc-text 1\ninputs 2\ngate 2 AND 0 1\noutputs 2 {outputs}\n")
    assert e.value.line == 4 or "out of range" in str(e.value)


def test_blif_inverter_that_a_gate_reads_stays_a_gate():
    # an edited lgc file whose inverted output buffer is also read by a gate: not a literal
    src = blif.dumps(Circuit(2, op=[ops.AND], a=[0], b=[1], outputs=[2], output_negated=[True]))
    edited = src.replace(".end\n", ".names y0 x0 z\n11 1\n.end\n").replace(".outputs y0", ".outputs y0 z")
    c = blif.parse(edited)
    x = _all_rows(c)
    got = simulate(c, x, head=False)
    assert got[:, 0].tolist() == (~(x[:, 0] & x[:, 1])).astype(int).tolist()
    assert got[:, 1].tolist() == ((~(x[:, 0] & x[:, 1])) & x[:, 0]).astype(int).tolist()


def _lgc_with(arrays_update: dict) -> bytes:
    header, payload = serialize.read_header(serialize.dumps(_net()))
    with np.load(io.BytesIO(payload)) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(arrays_update)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    payload = buf.getvalue()
    header.update(payload_bytes=len(payload))
    h = json.dumps(header).encode()
    body = serialize.MAGIC + struct.pack("<I", len(h)) + h + payload
    return body + hashlib.sha256(body).digest()


@pytest.mark.parametrize("value, match", [
    (np.array([True, False]), "has 2 entries"),
    (np.array([0.0, 1.0, 0.0, 1.0]), "output_negated has dtype float64"),
])
def test_lgc_file_with_a_bad_polarity_array_is_refused(value, match):
    with pytest.raises(CircuitError, match=match):
        serialize.loads(_lgc_with({"output_negated": value}))


def test_sat_miter_sees_the_polarity():
    need("sat", sat_solver_available())
    c = _net()
    flipped = c.replace(output_negated=~c.output_negated)
    assert equivalent(c, c.with_output_inverters(), method="sat")
    res = equivalent(c, flipped, method="sat")
    assert res.equal is False and res.differing_outputs is not None and len(res.differing_outputs) == 4


def test_optimize_turns_output_inverters_into_literals():
    # every output of an inverter chain / a NOT of a gate that other gates also read
    c = Circuit(3, op=[ops.AND, ops.NOT_A, ops.OR, ops.NOT_A, ops.NOT_A], a=[0, 3, 3, 2, 6], b=[1, 3, 2, 2, 6],
                outputs=[4, 5, 6, 7], head=GroupSumHead(2, 1.0))
    out = optimize(c, level=2)
    assert equivalent(c, out, method="exhaustive")
    assert out.num_gates == 2 and out.num_negated_outputs >= 1
    assert not np.isin(out.op, (ops.NOT_A, ops.NOT_B)).any()
    assert output_polarity(out) is out


def test_constant_outputs_share_one_constant_gate():
    c = Circuit(2, op=[ops.FALSE, ops.TRUE, ops.AND, ops.TRUE], a=[0, 0, 0, 0], b=[0, 0, 1, 0],
                outputs=[2, 3, 4, 5, 3])
    out = output_polarity(c)
    assert equivalent(c, out, method="exhaustive")
    assert int(np.isin(out.op, (ops.FALSE, ops.TRUE)).sum()) == 1 and out.num_gates == 2


def test_fraig_and_complement_hashing_drop_a_complement_gate_only_an_output_needs():
    # gate 3 = x0 AND x1; gate 4 = NAND(x1, x0) (a structural complement); gate 5 = NOT(x0 AND x1)
    # written as OR(NOT x0, NOT x1) (a functional one): outputs read all three
    c = Circuit(2, op=[ops.AND, ops.NAND, ops.NOT_A, ops.NOT_A, ops.OR], a=[0, 1, 0, 1, 4], b=[1, 0, 0, 1, 5],
                outputs=[2, 3, 6])
    from lgc.passes import fraig, merge_complements
    hashed = merge_complements(c)
    assert equivalent(c, hashed, method="exhaustive") and hashed.num_gates == c.num_gates - 1
    if sat_solver_available() is None:
        merged = fraig(c)
        assert equivalent(c, merged, method="exhaustive")
        assert merged.outputs.tolist() == [2, 2, 2] and merged.output_negated.tolist() == [False, True, True]
    assert optimize(c, level=2).num_gates == 1
