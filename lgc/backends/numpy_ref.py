"""The ``numpy`` target: the reference simulator behind the CompiledNet contract.

As fast as :func:`lgc.ir.simulate` (bit-sliced numpy), needs nothing but numpy."""
from __future__ import annotations

import numpy as np

from ..ir import Circuit, simulate_words
from ._common import CompiledNet

TARGETS = ("numpy",)


def available(target: str = "numpy") -> str | None:
    return None


class NumpyNet(CompiledNet):
    target = "numpy"

    def _run_words(self, words: np.ndarray) -> np.ndarray:
        return simulate_words(self.circuit, words)


def build(circuit: Circuit, target: str = "numpy", *, threads: int | None = None) -> NumpyNet:
    return NumpyNet(circuit, threads=threads)
