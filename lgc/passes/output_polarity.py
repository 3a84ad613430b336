"""Output polarity: no gate exists only to invert an output.

In the 16-op gate model inverting a gate's output is free (``NEGATE_OUT[op]``), and so is
inverting an operand (``NEGATE_A``/``NEGATE_B``) or an output (a negated output literal,
``Circuit.output_negated``): only an inverter gate costs a gate. So for every gate g that outputs
read only as NOT g (through inverters or copies), g is replaced by NOT g and every reader of g
absorbs the negation in its truth table; the outputs read g directly and the inverters vanish.
Where outputs need both polarities of g, or an inverted primary input (which has no gate to
flip), the outputs that need NOT g read g as a negated literal; constant outputs all read one
constant gate (TRUE is NOT FALSE). Chains of one-input gates are
resolved as in ``absorb_not`` (pointer jumping), so the pass subsumes it. Depth never grows.
Cost: O(nodes) numpy work per pointer-jumping sweep.

How the readouts see a negated output: the group-sum head counts it as ``1 - g`` (each backend's
readout subtracts it from a per-class constant: ``lgc.backends._schedule.readout_schedule``), the
Verilog module assigns ``y[j] = ~g`` (synthesis absorbs the inverter into the head's adders), AIGER
writes the complemented literal, BLIF an inverter cover, and a backend that returns output bits
computes the inverter (one NOT per 64 samples).
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
    const = n + np.flatnonzero(_ops.IS_CONSTANT[circuit.op])
    if const.size > 1:  # TRUE is NOT FALSE: every constant reads as the first one, or its negation
        value = circuit.op[const - n] == _ops.TRUE
        croot, cpar = np.arange(total, dtype=np.int64), np.zeros(total, dtype=bool)
        croot[const], cpar[const] = const[0], value ^ value[0]
        parity, root = parity ^ cpar[root], croot[root]
    out = circuit.outputs.astype(np.int64)
    out_root, out_odd = root[out], parity[out] ^ circuit.output_negated
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
    # output j was node out[j] = root XOR parity (parity after the flips): it reads the root, negated
    # where the parity and its old polarity differ
    negated = circuit.output_negated ^ parity[out].astype(bool)
    base = circuit if np.array_equal(negated, circuit.output_negated) else circuit.replace(output_negated=negated)
    return sweep(base, op.astype(np.uint8), a, b, out_root)
