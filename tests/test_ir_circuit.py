"""Circuit construction, validation, serialisation, text form, stats and networkx views."""
import numpy as np
import pytest
from hypothesis import given
from strategies import circuits

from lgc.ir import (Circuit, CircuitError, GroupSumHead, InputEncoder, example_circuit, from_networkx, load,
                    random_layered_circuit, save, stats, to_networkx)
from lgc.ir import ops, serialize
from lgc.ir.formats import FormatError, text


# -- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(num_inputs=2, op=[1], a=[2], b=[0], outputs=[2]), r"gate 0 \(node 2\): operand a = 2 is not before"),
    (dict(num_inputs=2, op=[1, 1], a=[0, 0], b=[1, 9], outputs=[2]), r"gate 1 \(node 3\): operand b = 9 is out of range"),
    (dict(num_inputs=2, op=[1], a=[-1], b=[0], outputs=[2]), r"operand a = -1 is negative"),
    (dict(num_inputs=2, op=[16], a=[0], b=[1], outputs=[2]), r"gate 0 \(node 2\): op code 16 outside 0..15"),
    (dict(num_inputs=2, op=[1], a=[0], b=[1], outputs=[3]), r"output 0 = node 3 is out of range"),
    (dict(num_inputs=2, op=[1], a=[0], b=[1], outputs=[2, 2, 2], head=GroupSumHead(2)), r"3 outputs cannot be split into 2"),
])
def test_validate_names_first_bad_gate(kwargs, match):
    n = kwargs.pop("num_inputs")
    with pytest.raises(CircuitError, match=match):
        Circuit(n, **kwargs).validate()


@pytest.mark.parametrize("kwargs, match", [
    (dict(op=[1.5], a=[0], b=[1]), "op must hold integers"),
    (dict(op=[[1]], a=[0], b=[1]), "op must be a 1-D array"),
    (dict(op=[1, 2], a=[0], b=[1]), "one length"),
    (dict(op=[1], a=[2**40], b=[1]), "outside the range of int32"),
    (dict(op=[300], a=[0], b=[1]), "outside the range of uint8"),
])
def test_constructor_rejects_wrong_dtype_or_shape(kwargs, match):
    with pytest.raises(CircuitError, match=match):
        Circuit(2, outputs=[0], **kwargs)


def test_head_and_encoder_checks():
    with pytest.raises(CircuitError, match="k >= 1"):
        GroupSumHead(0)
    with pytest.raises(CircuitError, match="tau"):
        GroupSumHead(2, tau=0.0)
    with pytest.raises(CircuitError, match="features must lie"):
        InputEncoder([0, 5], [0.0, 0.0], num_features=2)
    with pytest.raises(CircuitError, match="encoder has 1 bits"):
        Circuit(2, outputs=[0], input_encoder=InputEncoder([0], [0.0], 1)).validate()
    with pytest.raises(CircuitError, match="layers"):
        Circuit(2, [1], [0], [1], [2], layers=[0, 5]).validate()


def test_circuit_is_immutable_and_copies_user_arrays():
    op = np.array([1], np.uint8)
    c = Circuit(2, op, [0], [1], [2])
    op[0] = 6
    assert c.op[0] == 1
    with pytest.raises(ValueError):
        c.op[0] = 3
    c2 = c.replace(op=[6])
    assert c2.op[0] == 6 and c.op[0] == 1 and c2 != c


# -- files ------------------------------------------------------------------------------------
@given(circuits(encoders=True))
def test_lgc_file_round_trip_is_exact(circuit):
    back = serialize.loads(serialize.dumps(circuit))
    assert back == circuit and back.meta == circuit.meta
    assert back.content_hash() == circuit.content_hash()


@given(circuits(encoders=True))
def test_text_round_trip_is_exact(circuit):
    back = text.loads(text.dumps(circuit))
    assert back == circuit
    assert text.dumps(back) == text.dumps(circuit)


def test_save_load_paths(tmp_path):
    c = random_layered_circuit(20, [30, 10], num_classes=5, seed=1)
    save(c, tmp_path / "c.lgc")
    back = load(tmp_path / "c.lgc")
    assert back == c and back.layers.tolist() == c.layers.tolist()
    text.save(c, tmp_path / "c.lgct")
    assert text.load(tmp_path / "c.lgct") == c


def test_corrupt_files_raise_clear_errors(tmp_path):
    good = serialize.dumps(example_circuit())
    cases = {
        "magic": (b"NOTLGC!!" + good[8:], "not an .lgc file"),
        "truncated": (good[: len(good) - 10], "truncated"),
        "short": (good[:10], "truncated"),
        "flipped": (good[:-20] + bytes([good[-20] ^ 1]) + good[-19:], "checksum mismatch"),
        "newer": (good.replace(b'"version": 2', b'"version": 9'), "version 9 is not supported"),
        "newer-container": (b"LGCIRv2\n" + good[8:], "newer"),
        "empty": (b"", "not an .lgc file"),
    }
    for name, (data, match) in cases.items():
        p = tmp_path / f"{name}.lgc"
        p.write_bytes(data)
        with pytest.raises(CircuitError, match=match):
            load(p)


def test_file_with_valid_checksum_but_invalid_circuit_is_rejected():
    import hashlib, io, json, struct
    header, payload = serialize.read_header(serialize.dumps(example_circuit()))
    with np.load(io.BytesIO(payload)) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["a"][0] = 99  # forward reference
    buf = io.BytesIO(); np.savez(buf, **arrays); payload = buf.getvalue()
    header.update(payload_bytes=len(payload))
    h = json.dumps(header).encode()
    body = serialize.MAGIC + struct.pack("<I", len(h)) + h + payload
    with pytest.raises(CircuitError, match="operand a = 99"):
        serialize.loads(body + hashlib.sha256(body).digest())


@pytest.mark.parametrize("body, line, match", [
    ("lgc-text 1\ninputs 2\ngate 2 XOR 0 1\ngate 3 FOO 0 1\noutputs 3\n", 4, "unknown gate 'FOO'"),
    ("lgc-text 1\ninputs 2\ngate 3 XOR 0 1\noutputs 3\n", 3, "node order"),
    ("lgc-text 2\n", 1, "unsupported text format version"),
    ("hello\n", 1, "expected 'lgc-text 1'"),
    ("lgc-text 1\ninputs 2\ngate 2 XOR 0\noutputs 2\n", 3, "expected 'gate NODE OP A B'"),
    ("lgc-text 1\ninputs x\n", 2, "malformed"),
    ("lgc-text 1\ninputs 2\nwires 3\n", 3, "unknown statement"),
])
def test_malformed_text_names_the_line(body, line, match):
    with pytest.raises(FormatError, match=match) as e:
        text.loads(body, "net.lgct")
    assert e.value.line == line and f"net.lgct:{line}" in str(e.value)


def test_text_semantic_errors_are_format_errors():
    with pytest.raises(FormatError, match="operand a = 5"):
        text.loads("lgc-text 1\ninputs 2\ngate 2 XOR 5 1\noutputs 2\n")
    with pytest.raises(FormatError, match="missing"):
        text.loads("lgc-text 1\ninputs 2\n")


# -- inspection --------------------------------------------------------------------------------
def test_stats_counts_dead_gates_and_unused_inputs():
    # inputs 0..3; gate 4 = AND(0,1) live; gate 5 = XOR(2, 2) dead; gate 6 = A(0, 3) reads 3 but ignores it
    c = Circuit(4, [1, 6, 3], [0, 2, 0], [1, 2, 3], [4, 6])
    s = stats(c)
    assert s.num_gates == 3 and s.dead_gates == 1
    assert s.unused_inputs.tolist() == [2, 3]
    assert s.gates_by_op["AND"] == 1 and s.gates_by_op["XOR"] == 1 and s.depth == 1
    assert "dead" in str(s) and "<table>" in s._repr_html_() and "<table>" in c._repr_html_()


@given(circuits(max_gates=40))
def test_networkx_round_trip(circuit):
    g = to_networkx(circuit)
    assert g.number_of_nodes() == circuit.num_nodes
    assert g.number_of_edges() == 2 * circuit.num_gates
    assert from_networkx(g) == circuit


def test_random_layered_circuit_is_seeded_and_layered():
    c1 = random_layered_circuit(10, [8, 8, 4], num_classes=2, seed=5)
    c2 = random_layered_circuit(10, [8, 8, 4], num_classes=2, seed=5)
    assert c1 == c2 and c1.layers.tolist() == [0, 8, 16, 20] and c1.num_outputs == 4
    assert (c1.a[8:16] >= 10).all() and (c1.a[8:16] < 18).all()  # layer 2 reads layer 1 (nodes 10..17)


def test_op_tables_match_the_design():
    assert ops.OP_NAMES[6] == "XOR" and ops.op_code("xor") == 6
    for op in range(16):
        for a in (0, 1):
            for b in (0, 1):
                assert ops.TRUTH[op, a, b] == (op >> (3 - 2 * a - b)) & 1
                assert ops.TRUTH[ops.SWAP[op], b, a] == ops.TRUTH[op, a, b]
                assert ops.TRUTH[ops.NEGATE_A[op], 1 - a, b] == ops.TRUTH[op, a, b]
                assert ops.TRUTH[ops.NEGATE_B[op], a, 1 - b] == ops.TRUTH[op, a, b]
                c = ops.RELAX[op]
                assert c[0] + c[1] * a + c[2] * b + c[3] * a * b == ops.TRUTH[op, a, b]
        assert ops.TRUTH[ops.SAME_OPERAND[op], 0, 0] == ops.TRUTH[op, 0, 0]
        assert ops.TRUTH[ops.SAME_OPERAND[op], 1, 1] == ops.TRUTH[op, 1, 1]
    with pytest.raises(ValueError):
        ops.op_code(16)
