"""Hypothesis strategies every test file draws circuits and batches from.

Circuits include constants, self-paired gates (a == b), inverter chains, duplicate gates,
outputs that are inputs, repeated outputs, negated outputs (``output_negated``), and optional
group-sum heads and input encoders.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from lgc.ir import Circuit, GroupSumHead, InputEncoder


@st.composite
def circuits(draw, max_inputs: int = 12, max_gates: int = 60, max_outputs: int = 12, heads: bool = True,
             encoders: bool = False, min_inputs: int = 1) -> Circuit:
    n = draw(st.integers(min_inputs, max_inputs))
    g = draw(st.integers(0, max_gates))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    op = rng.integers(0, 16, size=g)
    # bias towards the interesting cases: constants, inverters/copies, self-pairs, local wiring
    style = draw(st.sampled_from(["uniform", "constants", "inverters", "self", "deep"]))
    hi = n + np.arange(g)
    a = (rng.random(g) * hi).astype(np.int64)
    b = (rng.random(g) * hi).astype(np.int64)
    if style == "constants":
        mask = rng.random(g) < 0.3
        op[mask] = rng.choice([0, 15], size=int(mask.sum()))
    elif style == "inverters":
        mask = rng.random(g) < 0.5
        op[mask] = rng.choice([3, 5, 10, 12], size=int(mask.sum()))
    elif style == "self":
        mask = rng.random(g) < 0.5
        b[mask] = a[mask]
    elif style == "deep":
        a = np.maximum(hi - 1 - (rng.random(g) * 3).astype(np.int64), 0)
    if g and draw(st.booleans()):  # plant a duplicate gate (possibly commuted)
        i = int(rng.integers(0, g))
        j = g - 1
        if i < j:
            op[j], a[j], b[j] = op[i], a[i], b[i]
    head = None
    total = n + g
    if heads and draw(st.booleans()):
        k = draw(st.integers(1, 4))
        per = draw(st.integers(1, 3))
        outputs = rng.integers(0, total, size=k * per)
        head = GroupSumHead(k, draw(st.sampled_from([1.0, 2.0, 10.0])))
    else:
        outputs = rng.integers(0, total, size=draw(st.integers(0, max_outputs)))
    if outputs.size and draw(st.booleans()):
        outputs[0] = int(rng.integers(0, n))  # an output that is a primary input
    negated = None
    if outputs.size and draw(st.booleans()):  # some outputs are negated literals
        negated = rng.random(outputs.size) < 0.5
    enc = None
    if encoders and draw(st.booleans()):
        feats = draw(st.integers(1, 6))
        enc = InputEncoder(rng.integers(0, feats, size=n), np.round(rng.normal(size=n), 2), feats)
    return Circuit(n, op, a, b, outputs, output_negated=negated, head=head, input_encoder=enc).validate()


@st.composite
def batches(draw, num_inputs: int, max_n: int = 200):
    """bool [N, num_inputs] with N from a spread that includes 1, 63, 64, 65 and non-multiples."""
    n = draw(st.one_of(st.sampled_from([1, 63, 64, 65, 127, 129]), st.integers(0, max_n)))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).random((n, num_inputs)) < 0.5


def circuit_and_batch(max_inputs: int = 12, max_gates: int = 60, **kw):
    return circuits(max_inputs=max_inputs, max_gates=max_gates, **kw).flatmap(
        lambda c: st.tuples(st.just(c), batches(c.num_inputs)))
