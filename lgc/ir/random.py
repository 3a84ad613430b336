"""Random circuits for tests, examples and benchmarks: difflogic-style layered random wiring.

Each layer's gates read two nodes drawn uniformly from the previous layer (the first layer
from the inputs); gate ops are drawn from ``op_weights`` (uniform over all 16 by default).
O(gates) numpy work.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .circuit import Circuit, GroupSumHead


def random_layered_circuit(num_inputs: int, layer_widths: Sequence[int], *, num_classes: int | None = None,
                           tau: float = 1.0, seed: int = 0, op_weights: Sequence[float] | None = None) -> Circuit:
    """A circuit shaped like a difflogic network ``num_inputs -> layer_widths``.

    With ``num_classes``, the last layer feeds a group-sum head (its width must divide evenly).
    """
    if not layer_widths:
        raise ValueError("need at least one layer")
    rng = np.random.default_rng(seed)
    p = None if op_weights is None else np.asarray(op_weights, dtype=np.float64) / np.sum(op_weights)
    ops, a, b, bounds = [], [], [], [0]
    prev_lo, prev_hi = 0, num_inputs
    node = num_inputs
    for width in layer_widths:
        ops.append(rng.choice(16, size=width, p=p).astype(np.uint8))
        a.append(rng.integers(prev_lo, prev_hi, size=width, dtype=np.int32))
        b.append(rng.integers(prev_lo, prev_hi, size=width, dtype=np.int32))
        prev_lo, prev_hi = node, node + width
        node += width
        bounds.append(bounds[-1] + width)
    head = GroupSumHead(num_classes, tau) if num_classes else None
    circuit = Circuit(num_inputs, np.concatenate(ops), np.concatenate(a), np.concatenate(b),
                      np.arange(prev_lo, prev_hi, dtype=np.int32), head=head, layers=bounds,
                      meta={"source": f"random_layered_circuit(seed={seed})"})
    return circuit.validate()


def example_circuit() -> Circuit:
    """A small built-in example: a 2-bit adder-ish circuit with a 2-class head, for docs and demos."""
    # inputs x0..x3; gates: 4=XOR(0,1) 5=AND(0,1) 6=XOR(2,3) 7=AND(2,3) 8=OR(5,7) 9=XOR(4,6)
    return Circuit(4, op=[6, 1, 6, 1, 7, 6], a=[0, 0, 2, 2, 5, 4], b=[1, 1, 3, 3, 7, 6],
                   outputs=[8, 9, 4, 6], head=GroupSumHead(2, 1.0), meta={"name": "example"}).validate()
