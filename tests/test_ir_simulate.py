"""The oracle against an independent naive evaluator, and the input contract."""
import numpy as np
import pytest
from hypothesis import given
from naive import naive_eval, naive_scores
from strategies import circuit_and_batch, circuits
from hypothesis import strategies as st

from lgc.ir import (Circuit, GroupSumHead, InputEncoder, PackedBits, levels, pack_bits, predict, simulate,
                    unpack_bits)


@given(circuit_and_batch())
def test_simulate_equals_naive_evaluator(cx):
    circuit, x = cx
    expected = naive_scores(circuit, x)
    got = simulate(circuit, x)
    assert got.dtype == (np.int32 if circuit.head else np.uint8)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@given(circuit_and_batch())
def test_simulate_raw_bits_equal_naive(cx):
    circuit, x = cx
    np.testing.assert_array_equal(simulate(circuit, x, head=False), naive_eval(circuit, x))


@given(st.integers(0, 300), st.integers(1, 70), st.integers(0, 2**32 - 1))
def test_pack_unpack_round_trip(n, width, seed):
    bits = np.random.default_rng(seed).random((n, width)) < 0.5
    packed = pack_bits(bits)
    assert packed.words.shape == (width, (n + 63) // 64)
    np.testing.assert_array_equal(unpack_bits(packed), bits.astype(np.uint8))


def test_packed_layout_is_the_documented_one():
    bits = np.zeros((70, 2), bool)
    bits[0, 0] = bits[65, 1] = True
    w = pack_bits(bits).words
    assert w[0, 0] == 1 and w[1, 1] == 2 and w[0, 1] == 0 and w[1, 0] == 0


@given(circuit_and_batch())
def test_packed_input_equals_bool_input(cx):
    circuit, x = cx
    np.testing.assert_array_equal(simulate(circuit, pack_bits(x)), simulate(circuit, x))


def test_numeric_zero_one_input_accepted_without_encoder():
    c = Circuit(2, [1], [0], [1], [2])
    np.testing.assert_array_equal(simulate(c, np.array([[1, 1], [1, 0]], dtype=np.float32)), [[1], [0]])


def test_encoder_takes_raw_features_and_images():
    enc = InputEncoder([0, 0, 1], [0.5, 1.5, 0.0], num_features=2)
    c = Circuit(3, [7], [0], [2], [3, 1], input_encoder=enc)
    raw = np.array([[0.7, -1.0], [2.0, 1.0], [0.1, 0.2]])
    assert simulate(c, raw).tolist() == [[1, 0], [1, 1], [1, 0]]
    # bools are bits even with an encoder
    assert simulate(c, np.array([[False, True, False]])).tolist() == [[0, 1]]
    # images [N, 1, 2] flatten to features
    np.testing.assert_array_equal(simulate(c, raw.reshape(3, 1, 2)), simulate(c, raw))


@pytest.mark.parametrize("bad, match", [
    (np.zeros((3, 5), bool), r"expected bool \[N, 4\]"),
    (np.zeros(4, bool), r"one sample, not a batch.*x\[None\]"),
    (np.full((2, 4), 2), r"0 or 1"),
    (np.full((2, 4), np.nan), r"NaN"),
    (np.array([["a"] * 4]), r"bool or numeric"),
    (PackedBits(np.zeros((3, 1), np.uint64), 5), r"3 bits per sample"),
])
def test_bad_inputs_are_clear_value_errors(bad, match):
    c = Circuit(4, [6], [0], [1], [4])
    with pytest.raises(ValueError, match=match):
        simulate(c, bad)


def test_raw_features_of_wrong_width_or_nan():
    enc = InputEncoder([0, 1], [0.5, 0.5], num_features=2)
    c = Circuit(2, [6], [0], [1], [2], input_encoder=enc)
    with pytest.raises(ValueError, match=r"\[N, 2\] features"):
        simulate(c, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        simulate(c, np.array([[np.nan, 0.0]]))


def test_packed_bits_rejects_bad_words_and_padding():
    with pytest.raises(ValueError, match="uint64"):
        PackedBits(np.zeros((2, 1), np.int64), 3)
    with pytest.raises(ValueError, match="needs 1 words"):
        PackedBits(np.zeros((2, 2), np.uint64), 3)
    with pytest.raises(ValueError, match="padding"):
        PackedBits(np.full((2, 1), 0xFF, np.uint64), 3)


def test_constant_gates_leave_no_padding_garbage_and_empty_batch_works():
    c = Circuit(1, [15], [0], [0], [1, 0], head=GroupSumHead(2))
    assert simulate(c, np.ones((65, 1), bool))[:, 0].tolist() == [1] * 65
    assert simulate(c, np.zeros((0, 1), bool)).shape == (0, 2)


def test_predict_lowest_index_wins_ties():
    c = Circuit(2, [15, 15, 0], [0, 0, 0], [0, 0, 0], [2, 3, 4, 4], head=GroupSumHead(2))
    # scores [1+1? ...]: class 0 = outputs (2, 3) = 1 + 1; class 1 = (4, 4) = 0 + 0
    assert predict(c, np.zeros((2, 2), bool)).tolist() == [0, 0]
    tie = Circuit(1, [15, 15], [0, 0], [0, 0], [1, 2], head=GroupSumHead(2))
    assert predict(tie, np.zeros((3, 1), bool)).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="head"):
        predict(Circuit(1, [], [], [], [0]), np.zeros((1, 1), bool))


def test_levels_ignore_unused_operands():
    # gate 2 = NOT_A(node 0) ignores b; gate 3 = B(?, node 2) -> depth 2; gate 4 = TRUE -> level 1
    c = Circuit(2, [12, 5, 15], [0, 1, 3], [1, 2, 3], [4])
    assert levels(c).tolist() == [1, 2, 1]


@given(circuits(max_gates=80))
def test_levels_are_one_more_than_used_operands(c):
    lv = levels(c)
    node_level = np.concatenate([np.zeros(c.num_inputs, int), lv])
    from lgc.ir.ops import IGNORES_A, IGNORES_B
    for i in range(c.num_gates):
        deps = [node_level[c.a[i]]] * (not IGNORES_A[c.op[i]]) + [node_level[c.b[i]]] * (not IGNORES_B[c.op[i]])
        assert lv[i] == 1 + max(deps, default=0)


def test_one_million_gates_simulate_in_seconds():
    """Functional scale check (not a timing assertion): a 1M-gate circuit on 10k samples runs,
    agrees with itself on a packed subset, and gives bounded scores."""
    from lgc.ir import random_layered_circuit
    c = random_layered_circuit(784, [200_000] * 5, num_classes=10, seed=3)
    x = np.random.default_rng(0).random((10_000, 784)) < 0.5
    scores = simulate(c, x)
    assert scores.shape == (10_000, 10) and scores.max() <= 20_000
    np.testing.assert_array_equal(scores[:100], simulate(c, x[:100]))


@given(st.integers(1, 6), st.integers(1, 3), st.booleans(), st.sampled_from(["float32", "float64", "uint8", "int16"]),
       st.integers(0, 2**32 - 1))
def test_encoder_equals_its_definition_for_every_layout_and_dtype(features, planes, shuffled, dtype, seed):
    """The fast paths (plane broadcasting, float32 thresholds rounded down) give exactly
    ``x[:, feature] > threshold`` compared in float64, also at thresholds between two float32s."""
    rng = np.random.default_rng(seed)
    feature = np.tile(np.arange(features), planes)
    if shuffled:
        feature = rng.integers(0, features, size=feature.size + 1)
    values = rng.integers(0, 4, size=12).astype(np.float64) / 4     # 0, .25, .5, .75 (exact in float32)
    threshold = rng.choice(np.concatenate([values, np.nextafter(values, 1), np.nextafter(values, -1),
                                           [0.1, 1 / 3, 2.5]]), size=feature.size)
    if dtype in ("uint8", "int16"):
        threshold = threshold * 4
    enc = InputEncoder(feature, threshold, features)
    x = rng.choice(np.concatenate([values, [0.1, 1 / 3]]), size=(5, features)) * (4 if dtype[0] in "ui" else 1)
    at_threshold = np.zeros((1, features))
    at_threshold[0, feature] = threshold           # a row on the thresholds themselves (last bit per feature wins)
    x = np.concatenate([x, at_threshold]).astype(dtype)
    want = x.astype(np.float64)[:, feature] > threshold
    got = enc.encode(x)
    assert got.dtype == bool and got.flags["C_CONTIGUOUS"]
    assert np.array_equal(got, want)
