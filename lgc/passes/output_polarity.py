"""Output polarity: a gate whose value the outputs need only negated computes the negation itself.

In the 16-op gate model inverting a gate's output is free (``NEGATE_OUT[op]``), and so is
inverting an operand (``NEGATE_A``/``NEGATE_B``): only an inverter that an *output* reads costs a
gate. So for every gate g that outputs read only as NOT g (through inverters or copies), g is
replaced by NOT g and every reader of g absorbs the negation in its truth table; the outputs read g
directly and the inverters vanish. Where outputs need both polarities of g one inverter stays (the
lowest-numbered existing one, as in ``absorb_not``); so does an inverted primary input, which has
no gate to flip. Chains of one-input gates are resolved as in ``absorb_not`` (pointer jumping), so
the pass subsumes it. Depth never grows. Cost: O(nodes) numpy work per pointer-jumping sweep.

The group-sum head is left as it is (a class counts its bits, never 1 - bit): extending it would
change every backend's readout and the Verilog head; see benchmarks/RESULTS.md (Passes).
"""
from __future__ import annotations

import numpy as np

from lgc.ir import Circuit, ops as _ops

from ._rewrite import ONE_INPUT, resolve_chains, sweep


def output_polarity(circuit: Circuit) -> Circuit:
    """Flip gates the outputs need only negated (see the module docstring). Function preserved exactly."""
    circuit.validate()
    n, total = circuit.num_inputs, circuit.num_nodes
    root, parity = resolve_chains(circuit, ONE_INPUT)
    out = circuit.outputs.astype(np.int64)
    out_root, out_odd = root[out], parity[out]
    need_neg = np.zeros(total, dtype=bool)
    need_pos = np.zeros(total, dtype=bool)
    need_neg[out_root[out_odd]] = True
    need_pos[out_root[~out_odd]] = True
    flip = need_neg & ~need_pos
    flip[:n] = False  # an input has no gate to flip
    op = circuit.op.copy()
    gate_flip = flip[n:]
    op[gate_flip] = _ops.NEGATE_OUT[op[gate_flip]]
    # node x computes root[x] XOR parity[x] before; the flipped root computes NOT of its old value
    parity = parity ^ flip[root]
    op = np.where(parity[circuit.a], _ops.NEGATE_A[op], op)
    op = np.where(parity[circuit.b], _ops.NEGATE_B[op], op)
    a, b = root[circuit.a], root[circuit.b]
    odd = parity[out]
    if odd.any():
        # the lowest-numbered node computing NOT root, for each root an output needs negated
        inv_nodes = np.flatnonzero(parity)
        canon = np.full(total, total, dtype=np.int64)
        np.minimum.at(canon, root[inv_nodes], inv_nodes)
        out = np.where(odd, canon[out_root], out_root)
    else:
        out = out_root
    return sweep(circuit, op.astype(np.uint8), a, b, out)
