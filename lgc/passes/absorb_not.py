"""NOT absorption: a consumer of an inverter reads the inverter's source with a rewritten truth table.

Chains of one-input gates (inverters NOT_A/NOT_B and copies A/B) are resolved to a root and a
parity by pointer jumping; each gate then reads the root, and where the parity is odd its op is
replaced by ``NEGATE_A[op]`` (or ``NEGATE_B``). Double inverters vanish. An inverter stays only
where an output needs the negated value (one per root: the lowest-numbered such gate, which
now reads the root directly). O(nodes) numpy work per pointer-jumping sweep; no level loop.
"""
from __future__ import annotations

import numpy as np

from lgc.ir import Circuit, ops as _ops

from ._rewrite import ONE_INPUT, resolve_chains, sweep


def absorb_not(circuit: Circuit) -> Circuit:
    """Absorb inverters into their consumers (see the module docstring). Function preserved exactly."""
    circuit.validate()
    root, parity = resolve_chains(circuit, ONE_INPUT)
    op = circuit.op
    op = np.where(parity[circuit.a], _ops.NEGATE_A[op], op)
    op = np.where(parity[circuit.b], _ops.NEGATE_B[op], op)
    a, b = root[circuit.a], root[circuit.b]
    out = circuit.outputs.astype(np.int64)
    odd = parity[out]
    if odd.any():
        # the lowest-numbered node computing NOT root, for each root an output needs negated
        total = circuit.num_nodes
        inv_nodes = np.flatnonzero(parity)
        canon = np.full(total, total, dtype=np.int64)
        np.minimum.at(canon, root[inv_nodes], inv_nodes)
        out = np.where(odd, canon[root[out]], root[out])
    else:
        out = root[out]
    return sweep(circuit, op.astype(np.uint8), a, b, out)
