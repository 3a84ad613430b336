"""An independent per-sample evaluator, written from the design's gate formula alone (no lgc.ir.ops),
so the simulator is checked against a second reading of the semantics."""
from __future__ import annotations

import numpy as np


def naive_eval(circuit, bits: np.ndarray) -> np.ndarray:
    """bool [N, num_inputs] -> uint8 [N, num_outputs], one sample and one gate at a time."""
    out = np.zeros((bits.shape[0], circuit.num_outputs), dtype=np.uint8)
    ops, aa, bb, outs = circuit.op.tolist(), circuit.a.tolist(), circuit.b.tolist(), circuit.outputs.tolist()
    for s, row in enumerate(bits):
        v = [int(x) for x in row]
        for op, a, b in zip(ops, aa, bb):
            v.append((op >> (3 - 2 * v[a] - v[b])) & 1)
        out[s] = [v[o] for o in outs]
    return out


def naive_scores(circuit, bits: np.ndarray) -> np.ndarray:
    out = naive_eval(circuit, bits)
    if circuit.head is None:
        return out
    k = circuit.head.k
    return out.reshape(out.shape[0], k, circuit.num_outputs // k).sum(axis=2).astype(np.int32)
