"""NOT absorption: a consumer of an inverter reads the inverter's source with a rewritten truth table.

Chains of one-input gates (inverters NOT_A/NOT_B and copies A/B) are resolved to a root and a
parity by pointer jumping; each gate then reads the root, and where the parity is odd its op is
replaced by ``NEGATE_A[op]`` (or ``NEGATE_B``). Double inverters vanish, and an output that
needs the negated value reads the root as a negated literal (``Circuit.output_negated``). O(nodes) numpy work per pointer-jumping sweep; no level loop.
"""
from __future__ import annotations

import numpy as np

from lgc.ir import Circuit, ops as _ops

from ._rewrite import ONE_INPUT, outputs_to_roots, resolve_chains, sweep


def absorb_not(circuit: Circuit) -> Circuit:
    """Absorb inverters into their consumers (see the module docstring). Function preserved exactly."""
    circuit.validate()
    root, parity = resolve_chains(circuit, ONE_INPUT)
    op = circuit.op
    op = np.where(parity[circuit.a], _ops.NEGATE_A[op], op)
    op = np.where(parity[circuit.b], _ops.NEGATE_B[op], op)
    a, b = root[circuit.a], root[circuit.b]
    base, out = outputs_to_roots(circuit, root, parity)
    return sweep(base, op.astype(np.uint8), a, b, out)
