"""Bit-sliced sample batches: 64 samples per uint64 word, and the checks that turn user input into them.

``PackedBits(words, n)``: ``words`` is uint64[num_bits, ceil(n/64)]; sample j is bit ``j % 64`` of
word ``j // 64``; padding bits are zero and never read back. Packing and unpacking use
``np.packbits``/``np.unpackbits`` (C loops), so they cost O(N * bits / 8) bytes of work.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from .circuit import Circuit

if sys.byteorder != "little":  # pragma: no cover - every supported host is little-endian
    raise ImportError("lgc's bit packing assumes a little-endian host")


class PackedBits:
    """A batch of ``n`` samples of ``words.shape[0]`` bits each, bit-sliced into uint64 words."""

    __slots__ = ("words", "n")

    def __init__(self, words: np.ndarray, n: int):
        words = np.asarray(words)
        if words.dtype != np.uint64 or words.ndim != 2:
            raise ValueError(f"PackedBits words must be uint64[bits, ceil(n/64)], got {words.dtype}{list(words.shape)}")
        n = int(n)
        if n < 0 or words.shape[1] != (n + 63) // 64:
            raise ValueError(f"PackedBits of n={n} samples needs {(n + 63) // 64} words per bit, got {words.shape[1]}")
        if n % 64 and words.shape[0] and (words[:, -1] >> np.uint64(n % 64)).any():
            raise ValueError("PackedBits padding bits (past sample n) must be zero")
        self.words = words
        self.n = n

    @property
    def num_bits(self) -> int:
        return int(self.words.shape[0])

    def __repr__(self) -> str:
        return f"PackedBits(bits={self.num_bits}, n={self.n})"


def num_words(n: int) -> int:
    return (n + 63) // 64


def pack_bits(bits: np.ndarray) -> PackedBits:
    """bool/uint8 0-1 ``[N, B]`` -> :class:`PackedBits` with B rows."""
    bits = np.asarray(bits)
    n, width = bits.shape
    w = num_words(n)
    packed = np.packbits(bits.T.astype(bool, copy=False), axis=1, bitorder="little")  # [B, ceil(N/8)]
    out = np.zeros((width, w * 8), dtype=np.uint8)
    out[:, : packed.shape[1]] = packed
    return PackedBits(out.view(np.uint64), n)


def unpack_bits(packed: PackedBits) -> np.ndarray:
    """:class:`PackedBits` with B rows -> uint8 ``[N, B]``."""
    as_bytes = np.ascontiguousarray(packed.words).view(np.uint8)
    bits = np.unpackbits(as_bytes, axis=1, bitorder="little", count=packed.n)
    return np.ascontiguousarray(bits.T)


def batch_layout(circuit: Circuit, shape: tuple[int, ...], is_bool: bool) -> int | None:
    """Check a batch's shape against the input contract, before any data is touched.

    Returns None for bits (``[N, num_inputs]``) or the raw feature count per sample (raw features
    ``[N, ...]`` flattening to ``[N, num_features]``, only when the circuit has an input encoder
    and the input is not bool). One 1-D sample (``x_test[0]``) is refused by name (a batch is
    ``[N, ...]``; pass ``x[None]``), as is one raw sample without its batch axis. An empty batch
    ``[0, ...]`` is valid. Shared by every target (numpy and torch input) and the simulator.
    Raises ValueError saying what was expected.
    """
    n_in, enc = circuit.num_inputs, circuit.input_encoder
    shape = tuple(int(d) for d in shape)
    if not shape:
        raise ValueError(f"input must be a batch [N, {n_in}], got a scalar")
    if is_bool or enc is None:
        if len(shape) == 2 and shape[1] == n_in:
            return None
        if shape == (n_in,):
            raise ValueError(f"input of shape [{n_in}] is one sample, not a batch: pass a batch [1, {n_in}] "
                             f"(x[None] or x.reshape(1, -1)); results are per row")
        want = f"bool [N, {n_in}]" + (f" bits, or raw features [N, {enc.num_features}]" if enc else " (or 0/1 numbers)")
        raise ValueError(f"input of shape {list(shape)} does not fit: expected {want}")
    features = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else -1
    if features == enc.num_features:
        return features
    if int(np.prod(shape, dtype=np.int64)) == enc.num_features:
        raise ValueError(f"raw input of shape {list(shape)} is one sample of {enc.num_features} features, not a batch: "
                         f"pass a batch {[1, *shape]} (x[None]); results are per row")
    raise ValueError(f"raw input of shape {list(shape)} does not fit: expected [N, {enc.num_features}] "
                     f"features (or bool [N, {n_in}] bits)")


def input_bits(circuit: Circuit, x: Any) -> np.ndarray | PackedBits:
    """Check a user batch against the design's input contract; return bool bits or PackedBits.

    Bits: bool ``[N, num_inputs]`` (any nonzero byte is True, as numpy reads a bool array), or
    numeric 0/1 when the circuit has no input encoder. Raw features: any numeric ``[N, ...]``
    (flattened to ``num_features``) when it has one. ``N`` may be 0; a 1-D sample is refused
    (see :func:`batch_layout`). Anything else is a ``ValueError`` that says what was expected.
    """
    n_in = circuit.num_inputs
    if isinstance(x, PackedBits):
        if x.num_bits != n_in:
            raise ValueError(f"packed input has {x.num_bits} bits per sample, circuit expects {n_in}")
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype == object or x.dtype.kind not in "biuf":
        raise ValueError(f"input must be a bool or numeric array, got dtype {x.dtype}")
    features = batch_layout(circuit, x.shape, x.dtype == bool)
    if features is None:
        if x.dtype != bool:
            if x.dtype.kind == "f" and np.isnan(x).any():
                raise ValueError("input holds NaN; bits must be 0 or 1")
            if x.size and not ((x == 0) | (x == 1)).all():
                raise ValueError("input bits must be 0 or 1 (the circuit has no input encoder for raw features)")
        return x
    flat = x.reshape(x.shape[0], features)  # the width from batch_layout, not -1: N may be 0
    if flat.dtype.kind == "f" and np.isnan(flat).any():
        raise ValueError("raw input holds NaN")
    return circuit.input_encoder.encode(flat)


def packed_input(circuit: Circuit, x: Any) -> PackedBits:
    """:func:`input_bits`, packed."""
    bits = input_bits(circuit, x)
    return bits if isinstance(bits, PackedBits) else pack_bits(bits)
