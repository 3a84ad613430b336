"""Host side of the CUDA packed-bits runtime: a Circuit as the tables ``cuda/runtime.cu`` runs,
and a numpy emulation of exactly what its kernels do (so the tables are tested without a GPU).

The tables reuse the CPU kernels' liveness schedule (:mod:`._schedule`): rows sorted by
(level, kind), node values in recycled slots. Each row becomes an int32 quadruple
(slot of a, slot of b, slot of the result, truth table of the row's function of (a, b)), the
table the GPU kernel evaluates with one mask per minterm. Cost: the schedule's
O(gates log gates) numpy work; nothing per gate in Python.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..ir import Circuit, levels
from ._schedule import KIND_OP, schedule

#: schedule kind -> truth table (difflogic op code) of the row's operands (a, b) after any swap
KIND_CODE = KIND_OP.astype(np.int32)

#: the kernel's vertical counter has this many planes (cuda/runtime.cu LGC_CU_PLANES)
PLANES = 24


@dataclasses.dataclass(frozen=True)
class CudaTables:
    """``rows`` int32[R, 4] (a slot, b slot, result slot, code), level L's rows are
    ``rows[level_bounds[L]:level_bounds[L+1]]``; inputs occupy slots ``0 .. num_inputs-1``;
    ``k`` = 0 means raw output bits."""

    num_inputs: int
    num_slots: int
    rows: np.ndarray
    level_bounds: np.ndarray
    out_slots: np.ndarray
    k: int

    @property
    def num_levels(self) -> int:
        return int(self.level_bounds.size - 1)

    def bytes_per_chunk_word(self) -> int:
        """Device workspace per word (64 samples) of a chunk: node values, plus the most the
        runtime stages (input byte rows from the host, int32 scores or bytes for the host)."""
        width = self.k or self.out_slots.size
        return 8 * self.num_slots + 64 * self.num_inputs + 64 * 4 * width


def tables(circuit: Circuit) -> CudaTables:
    """The runtime's tables for ``circuit`` (validated; negated outputs run through NOT gates)."""
    circuit = circuit.validate().with_output_inverters()
    s = schedule(circuit)
    g = circuit.num_gates
    k = circuit.head.k if circuit.head is not None else 0
    if k and circuit.num_outputs // k >= (1 << PLANES):
        raise ValueError(f"a group of {circuit.num_outputs // k} outputs exceeds the CUDA readout's "
                         f"{(1 << PLANES) - 1}-bit counters")
    if g == 0:
        return CudaTables(s.num_inputs, s.num_slots, np.zeros((0, 4), np.int32), np.zeros(1, np.int64),
                          np.ascontiguousarray(s.out_slots, dtype=np.int32), k)
    kinds = np.repeat(s.groups[:, 0], s.groups[:, 2] - s.groups[:, 1])
    rows = np.empty((g, 4), dtype=np.int32)
    rows[:, :3] = s.gates
    rows[:, 3] = KIND_CODE[kinds]
    sorted_levels = np.sort(levels(circuit))  # the schedule's rows are in level order
    depth = int(sorted_levels[-1])
    bounds = np.searchsorted(sorted_levels, np.arange(1, depth + 2), side="left").astype(np.int64)
    return CudaTables(s.num_inputs, s.num_slots, np.ascontiguousarray(rows), bounds,
                      np.ascontiguousarray(s.out_slots, dtype=np.int32), k)


_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


def _eval_rows(rows: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    code = rows[:, 3].astype(np.uint64)
    m = [((code >> np.uint64(i)) & np.uint64(1)) * _ONES for i in range(4)]  # m[3] = f(0,0) ... m[0] = f(1,1)
    na, nb = ~a, ~b
    return ((m[3][:, None] & na & nb) | (m[2][:, None] & na & b) | (m[1][:, None] & a & nb)
            | (m[0][:, None] & a & b))


def _vertical_count(words: np.ndarray) -> np.ndarray:
    """uint64[group, cw] -> int32 counts [cw * 64] by the kernel's bit-sliced counter."""
    cw = words.shape[1]
    planes = np.zeros((PLANES, cw), dtype=np.uint64)
    for x in words:
        x = x.copy()
        for p in range(PLANES):
            if not x.any():
                break
            carry = planes[p] & x
            planes[p] ^= x
            x = carry
    shifts = np.arange(64, dtype=np.uint64)
    counts = np.zeros((cw, 64), dtype=np.int64)
    for p in range(PLANES):
        counts |= ((planes[p][:, None] >> shifts) & np.uint64(1)).astype(np.int64) << p
    return counts.reshape(-1).astype(np.int32)


def emulate(t: CudaTables, words: np.ndarray, n: int, chunk_words: int) -> np.ndarray:
    """What ``lgc_cu_run`` computes, in numpy: input words uint64[num_inputs, ceil(n/64)] ->
    int32 scores [n, k] (or uint8 bits [n, O] when k == 0), chunk by chunk, in slots."""
    total = (n + 63) // 64
    width = t.k if t.k else t.out_slots.size
    out = np.zeros((n, width), dtype=np.int32 if t.k else np.uint8)
    for w0 in range(0, total, chunk_words):
        cw = min(chunk_words, total - w0)
        ns = min(n - w0 * 64, cw * 64)
        values = np.zeros((t.num_slots, cw), dtype=np.uint64)
        values[:t.num_inputs] = words[:, w0:w0 + cw]
        for lo, hi in zip(t.level_bounds[:-1], t.level_bounds[1:]):
            r = t.rows[lo:hi]
            values[r[:, 2]] = _eval_rows(r, values[r[:, 0]], values[r[:, 1]])
        if t.k:
            group = t.out_slots.size // t.k
            for c in range(t.k):
                out[w0 * 64:w0 * 64 + ns, c] = _vertical_count(values[t.out_slots[c * group:(c + 1) * group]])[:ns]
        elif width:
            sel = values[t.out_slots]  # [O, cw]
            bits = np.unpackbits(np.ascontiguousarray(sel).view(np.uint8), axis=1, bitorder="little", count=ns)
            out[w0 * 64:w0 * 64 + ns] = bits.T
    return out
