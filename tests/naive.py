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
        out[s] = [v[o] ^ int(neg) for o, neg in zip(outs, circuit.output_negated.tolist())]
    return out


def naive_scores(circuit, bits: np.ndarray) -> np.ndarray:
    out = naive_eval(circuit, bits)
    if circuit.head is None:
        return out
    k = circuit.head.k
    return out.reshape(out.shape[0], k, circuit.num_outputs // k).sum(axis=2).astype(np.int32)


def fuse_pairs_loop(circuit) -> tuple[np.ndarray, ...]:
    """The per-gate Python loop lgc.backends._schedule.fuse_pairs replaced (kept as its reference):
    fold a gate with exactly one reader (not an output) into that reader, operand a first, unless
    the gate absorbed one itself. Truth tables from the design's formula, not lgc.ir.ops."""
    def f(op, x, y):
        return (op >> (3 - 2 * x - y)) & 1
    ignores_a = [all(f(o, 0, y) == f(o, 1, y) for y in (0, 1)) for o in range(16)]
    ignores_b = [all(f(o, x, 0) == f(o, x, 1) for x in (0, 1)) for o in range(16)]
    n, g = circuit.num_inputs, circuit.num_gates
    op, ca, cb = circuit.op.tolist(), circuit.a.tolist(), circuit.b.tolist()
    use_a, use_b = [not ignores_a[o] for o in op], [not ignores_b[o] for o in op]
    readers = [0] * (n + g)
    for h in range(g):
        readers[ca[h]] += use_a[h]
        readers[cb[h]] += use_b[h]
    for o in circuit.outputs.tolist():
        readers[o] += 2  # outputs are never folded away
    fa, fb, fc = (np.zeros(g, dtype=np.int64) for _ in range(3))
    imm = np.full(g, -1, dtype=np.int64)
    alive = np.ones(g, dtype=bool)
    absorbed_any = [False] * g
    for h in range(g):
        if not (use_a[h] and use_b[h]) or ca[h] == cb[h]:
            continue
        for side, p_node in ((0, ca[h]), (1, cb[h])):
            p = p_node - n
            if p < 0 or readers[p_node] != 1 or absorbed_any[p] or not alive[p]:
                continue
            z = cb[h] if side == 0 else ca[h]
            t = 0
            for bit in range(8):
                x, y, zv = (bit >> 2) & 1, (bit >> 1) & 1, bit & 1
                pv = f(op[p], x, y)
                t |= (f(op[h], pv, zv) if side == 0 else f(op[h], zv, pv)) << bit
            fa[h], fb[h], fc[h], imm[h] = ca[p], cb[p], z, t
            alive[p] = False
            absorbed_any[h] = True
            break
    return fa, fb, fc, imm, alive
