"""The reference simulator: the oracle that defines what a Circuit computes.

Bit-sliced numpy: 64 samples per uint64 word; the gates of one level are evaluated together by
one gather and one algebraic-normal-form expression (see :func:`lgc.ir.ops.apply_words`).
Samples are processed in chunks so the node-value matrix stays under ``memory_bytes``.
Cost: O(gates * samples / 64) word operations plus one numpy call group per level per chunk.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import ops as _ops
from .circuit import Circuit
from .levels import level_order
from .packed import PackedBits, num_words, packed_input, unpack_bits

DEFAULT_MEMORY_BYTES = 256 << 20


def simulate_words(circuit: Circuit, words: np.ndarray, *, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> np.ndarray:
    """uint64[num_inputs, W] input words -> uint64[num_outputs, W] output words (negated outputs
    complemented)."""
    circuit.validate()
    n = circuit.num_inputs
    order, bounds = level_order(circuit)
    op_sorted = circuit.op[order]
    a_sorted, b_sorted = circuit.a[order], circuit.b[order]
    node_sorted = n + order
    total_w = words.shape[1]
    chunk = max(1, min(total_w, memory_bytes // (8 * max(1, circuit.num_nodes))))
    out = np.empty((circuit.num_outputs, total_w), dtype=np.uint64)
    values = np.empty((circuit.num_nodes, chunk), dtype=np.uint64)
    for start in range(0, total_w, chunk):
        stop = min(total_w, start + chunk)
        vals = values[:, : stop - start]
        vals[:n] = words[:, start:stop]
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            vals[node_sorted[lo:hi]] = _ops.apply_words(op_sorted[lo:hi], vals[a_sorted[lo:hi]], vals[b_sorted[lo:hi]])
        out[:, start:stop] = vals[circuit.outputs]
    if circuit.output_negated.any():
        out[circuit.output_negated] ^= np.uint64(0xFFFFFFFFFFFFFFFF)
    return out


def group_sum(bits: np.ndarray, k: int) -> np.ndarray:
    """uint8 output bits [N, O] -> int32 class scores [N, k] (popcount of k contiguous groups)."""
    n, o = bits.shape
    return bits.reshape(n, k, o // k).sum(axis=2, dtype=np.int32)


def group_sum_words(words: np.ndarray, n: int, k: int) -> np.ndarray:
    """Packed output words uint64[O, W] -> int32 class scores [n, k], one class at a time so the
    unpacked bits never exceed one group (no [N, O] transpose)."""
    o = words.shape[0]
    scores = np.empty((n, k), dtype=np.int32)
    as_bytes = np.ascontiguousarray(words).view(np.uint8)
    group = o // k
    for cls in range(k):
        bits = np.unpackbits(as_bytes[cls * group:(cls + 1) * group], axis=1, bitorder="little", count=n)
        scores[:, cls] = bits.sum(axis=0, dtype=np.int32)
    return scores


def simulate(circuit: Circuit, x: Any, *, head: bool = True) -> np.ndarray:
    """Run ``circuit`` on a batch.

    ``x``: bool ``[N, num_inputs]``, 0/1 numbers, :class:`PackedBits`, or raw features when the
    circuit has an input encoder. Returns int32 class scores ``[N, k]`` when the circuit has a
    group-sum head (and ``head`` is true), else uint8 output bits ``[N, num_outputs]``.
    """
    packed = packed_input(circuit, x)
    out_words = simulate_words(circuit, packed.words)
    if num_words(packed.n) and packed.n % 64:
        out_words[:, -1] &= np.uint64((1 << (packed.n % 64)) - 1)  # constants set padding bits
    if head and circuit.head is not None:
        return group_sum_words(out_words, packed.n, circuit.head.k)
    return unpack_bits(PackedBits(out_words, packed.n))


def predict(circuit: Circuit, x: Any) -> np.ndarray:
    """int64[N] class index: argmax of the scores, lowest index on ties."""
    if circuit.head is None:
        raise ValueError("predict needs a circuit with a group-sum head")
    return np.argmax(simulate(circuit, x), axis=1).astype(np.int64)
