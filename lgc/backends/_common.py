"""What every executable backend shares: the CompiledNet contract, input checks and readout.

A backend only supplies ``_run_words(words: uint64[num_inputs, W]) -> uint64[num_outputs, W]``
(or overrides ``__call__`` for a faster fused path); checking, packing, the group-sum readout,
``predict`` and ``save`` live here once.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..ir import Circuit, PackedBits, packed_input, unpack_bits
from ..ir.simulate import group_sum_words


class CompiledNet:
    """An executable circuit. ``net(x)`` -> int32 class scores [N, k] (uint8 bits [N, O] without a head)."""

    target: str = "?"

    def __init__(self, circuit: Circuit, *, threads: int | None = None):
        self.circuit = circuit.validate()
        self.threads = threads

    def _run_words(self, words: np.ndarray) -> np.ndarray:  # pragma: no cover - every backend overrides
        raise NotImplementedError

    def __call__(self, x: Any) -> np.ndarray:
        packed = packed_input(self.circuit, x)
        out = self._run_words(np.ascontiguousarray(packed.words))
        if packed.n % 64 and out.size:
            out[:, -1] &= np.uint64((1 << (packed.n % 64)) - 1)
        if self.circuit.head is not None:
            return group_sum_words(out, packed.n, self.circuit.head.k)
        return unpack_bits(PackedBits(out, packed.n))

    def predict(self, x: Any) -> np.ndarray:
        """int64[N] class index (argmax, the lowest index wins a tie)."""
        if self.circuit.head is None:
            raise ValueError("predict needs a circuit with a group-sum head")
        return np.argmax(self(x), axis=1).astype(np.int64)

    def save(self, path: str | os.PathLike) -> None:
        """Write a ``.lgc`` file holding the circuit and this target; ``lgc.load`` rebuilds it."""
        from ..ir.serialize import save
        save(self.circuit, path, meta={"compiled_target": self.target})

    def __repr__(self) -> str:
        return f"<CompiledNet target={self.target!r} {self.circuit!r}>"
