"""BLIF and AIGER readers/writers: exact round trips, general BLIF covers, malformed input.

Pure Python (no EDA tools); the tool-checked tests are in test_hardware.py."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lgc
from lgc.ir import Circuit, GroupSumHead, InputEncoder, random_layered_circuit, simulate
from lgc.ir.formats import FormatError, aiger, blif
from strategies import circuits


def _rows(n: int, count: int = 256, seed: int = 0) -> np.ndarray:
    if n <= 8:
        return ((np.arange(1 << n)[:, None] >> np.arange(n)) & 1).astype(bool)
    return np.random.default_rng(seed).integers(0, 2, (count, n)).astype(bool)


def assert_same_function(c1: Circuit, c2: Circuit) -> None:
    assert c1.num_inputs == c2.num_inputs and c1.num_outputs == c2.num_outputs
    x = _rows(c1.num_inputs)
    np.testing.assert_array_equal(simulate(c1, x, head=False), simulate(c2, x, head=False))


def assert_same_structure(c1: Circuit, c2: Circuit) -> None:
    for f in ("op", "a", "b", "outputs"):
        np.testing.assert_array_equal(getattr(c1, f), getattr(c2, f), err_msg=f)
    assert c1.num_inputs == c2.num_inputs and c1.head == c2.head and c1.input_encoder == c2.input_encoder


@settings(max_examples=150)
@given(circuits(max_inputs=10, max_gates=80, encoders=True))
def test_blif_round_trip_is_gate_for_gate(c):
    text = blif.dumps(c)
    assert_same_structure(blif.loads(text), c)  # lgc's fast path
    assert_same_structure(blif.parse(text), c)  # the general parser agrees


def test_blif_fast_path_falls_back_on_edited_files():
    c = random_layered_circuit(6, [10, 6], num_classes=2, seed=4)
    text = blif.dumps(c)
    i = text.index(".names x")
    edited = text[:i] + "# a comment\n" + text[i:]  # not byte-identical: general parser, same circuit
    assert_same_structure(blif.loads(edited), c)
    j = text.index(" 1\n", i) - 2  # change the first gate's first cover row
    flipped = text[:j] + ("01" if text[j:j + 2] != "01" else "10") + text[j + 2:]
    back = blif.loads(flipped)
    assert back.op[0] != c.op[0] or not np.array_equal(back.op, c.op)


@settings(max_examples=150)
@given(circuits(max_inputs=10, max_gates=80, encoders=True), st.booleans())
def test_aiger_round_trip(c, binary):
    data = aiger.dumps(c, binary=binary)
    back = aiger.loads(data)
    assert_same_function(back, c)
    assert back.head == c.head and back.input_encoder == c.input_encoder
    assert set(np.unique(back.op).tolist()) <= {0, 1, 2, 4, 8, 12, 15}  # AND/inverter circuit
    assert aiger.dumps(back, binary=binary) == data  # write -> read -> write is the identity
    other = aiger.loads(aiger.dumps(c, binary=not binary))  # both encodings mean the same AIG
    assert aiger.dumps(other, binary=binary) == data


def test_aiger_and_counts_per_op():
    # one gate of each op on inputs 0, 1: XOR/XNOR take 3 ANDs, copies/inverters/constants none
    c = Circuit(2, np.arange(16), np.zeros(16, int), np.ones(16, int), 2 + np.arange(16))
    header = aiger.dumps(c).split(b"\n")[0].split()
    assert int(header[5]) == 8 * 1 + 2 * 3
    assert_same_function(aiger.loads(aiger.dumps(c, binary=True)), c)


def test_large_circuit_round_trips(tmp_path):
    c = random_layered_circuit(64, [3000, 3000, 1000], num_classes=10, seed=3)
    for suffix in (".aig", ".aag", ".blif"):
        path = tmp_path / f"net{suffix}"
        lgc.export(c, path, opt_level=0)  # the lowered structure, gate for gate
        back = lgc.load(path)
        assert_same_function(back, c)
        assert back.head == c.head
    assert_same_structure(lgc.load(tmp_path / "net.blif"), c)


def test_blif_general_covers():
    # covers with more than two inputs, off-set covers, don't cares, out-of-order definitions,
    # a constant written ABC-style, continuation lines and an output that is an input
    text = """# a hand-written BLIF
.model t
.inputs a b \\
 c d
.outputs f g h k a
.names a b c d f
1-0- 1
-11- 1
0001 1
.names t1 d g
10 1
01 1
.names a b c t1
111 0
.names h
 0
.names k
1
.end
"""
    c = blif.loads(text)
    x = _rows(4)
    a, b, cc, d = x.T
    t1 = ~(a & b & cc)
    want = np.stack([(a & ~cc) | (b & cc) | (~a & ~b & ~cc & d), t1 ^ d, np.zeros_like(a), np.ones_like(a), a], 1)
    np.testing.assert_array_equal(simulate(c, x), want.astype(np.uint8))


@pytest.mark.parametrize("text, line, words", [
    (".model t\n.inputs a\n.outputs y\n.names a q y\n11 1\n.end\n", 4, "never defined"),
    (".model t\n.inputs a\n.outputs y\n.names a z y\n11 1\n.names y z\n1 1\n.end\n", None, "cycle"),
    (".model t\n.inputs a b\n.outputs y\n.names a b y\n1x 1\n.end\n", 5, "cover row"),
    (".model t\n.inputs a b\n.outputs y\n.names a b y\n11 1\n00 0\n.end\n", 6, "mixes"),
    (".model t\n.inputs a\n.outputs y\n.latch a y 0\n.end\n", 4, ".latch"),
    (".model t\n.inputs a\n.outputs y\n.names a y\n1 1\n.names a y\n0 1\n.end\n", 6, "defined twice"),
    (".model t\n.inputs a\n.outputs y\n.frobnicate\n.end\n", 4, "unknown statement"),
    ("11 1\n", 1, ".model"),
    (".model t\n.inputs a\n.outputs y z\n.names a y\n1 1\n.end\n", None, "never defined"),
])
def test_blif_errors_name_the_line(text, line, words):
    with pytest.raises(FormatError, match=words) as info:
        blif.loads(text, source="bad.blif")
    if line is not None:
        assert info.value.line == line and f"bad.blif:{line}" in str(info.value)


def test_blif_cycle_names_a_line():
    text = ".model t\n.inputs a\n.outputs y\n.names a z y\n11 1\n.names y z\n1 1\n.end\n"
    with pytest.raises(FormatError, match="cycle") as info:
        blif.loads(text)
    assert info.value.line in (4, 6)


@pytest.mark.parametrize("data, line, words", [
    (b"aig 1 1 0 1\n", 1, "malformed header"),
    (b"agg 1 1 0 1 0\n2\n2\n", 1, "expected 'aag"),
    (b"aag 2 1 1 1 0\n2\n4 2\n4\n", 1, "latches"),
    (b"aag 3 2 0 1 1\n2\n4\n6\n6 2 9\n", 5, "exceeds"),
    (b"aag 3 2 0 1 1\n2\n4\n6\n6 2 x\n", 5, "AND line"),
    (b"aag 3 2 0 1 1\n2\n4\n6\n7 2 4\n", 5, "even"),
    (b"aag 4 2 0 1 1\n2\n4\n6\n6 2 8\n", 5, "undefined"),
    (b"aag 4 2 0 1 2\n2\n4\n6\n6 2 8\n8 6 4\n", 5, "cycle"),
    (b"aag 3 2 0 1 1\n2\n4\n6\n", 5, "ends early"),
    (b"aag 3 2 0 2 0\n2\n4\n4\n6\n", 5, "undefined"),
    (b"aag 3 2 0 2 1\n2\n4\n6\n", 5, "ends early"),
    (b"aig 3 2 0 1 1\n6\n\x02", 3, "truncated"),
    (b"aig 3 2 0 1 1\n6\n\x80\x80", 3, "truncated"),
    (b"aig 4 2 0 1 1\n6\n\x02\x02", 1, "M = I"),
    (b"aig 3 2 0 1 1\n6\n\x00\x00", 3, "invalid deltas"),
])
def test_aiger_errors_name_the_line(data, line, words):
    with pytest.raises(FormatError, match=words) as info:
        aiger.loads(data, source="bad.aig")
    assert info.value.line == line


def test_aiger_reads_unordered_ascii_and_constants():
    # ANDs listed out of order, an AND reading constant TRUE, outputs that are constants/complements
    data = b"aag 5 2 0 5 3\n2\n4\n10\n1\n0\n3\n7\n10 8 6\n6 2 4\n8 4 1\n"
    c = aiger.loads(data)
    x = _rows(2)
    a, b = x.T
    and6 = a & b
    want = np.stack([and6 & b, np.ones_like(a), np.zeros_like(a), ~a, ~and6], 1)
    np.testing.assert_array_equal(simulate(c, x), want.astype(np.uint8))


def test_head_and_encoder_survive_files(tmp_path):
    enc = InputEncoder(np.arange(6) % 3, np.linspace(-1, 1, 6), 3)
    c = random_layered_circuit(6, [12, 8], num_classes=4, tau=3.0, seed=2).replace(input_encoder=enc)
    for suffix in (".aig", ".aag", ".blif"):
        back = lgc.load(lgc.export(c, tmp_path / f"n{suffix}") or tmp_path / f"n{suffix}")
        assert back.head == GroupSumHead(4, 3.0) and back.input_encoder == enc


def test_blif_model_name_is_checked():
    c = random_layered_circuit(3, [3], seed=0)
    assert ".model my_net\n" in blif.dumps(c, model="my_net")
    with pytest.raises(ValueError, match="model name"):
        blif.dumps(c, model="two words")
