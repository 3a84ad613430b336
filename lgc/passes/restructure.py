"""Restructuring: decompose every gate into AND/inverter form and rewrite again.

The rewriting passes (pair extraction, cut rewriting, refactoring) improve the structure they are
given and keep its grouping: an XOR stays one gate, an OR tree stays a tree over the operands it
had. This pass gives them another structure to start from, as ABC's ``strash`` does before its
rewriting scripts: the circuit as an AIG (``lgc.ir.formats.aiger``: AND-like and OR-like gates one
AND with complemented edges, XOR/XNOR three ANDs; copies and inverters vanish), then the rewriting
pipeline again. The result replaces the input only when it has fewer gates and, by default, no
greater depth than the input (the stated depth bound of O3: the input's depth; ``depth_bound=False``,
pass ``restructure_area``, keeps any smaller result). The pass repeats until an attempt gains
nothing, so it is idempotent (the pass manager's contract).

What it gains: on the trained conv net of benchmarks/RESULTS.md (Passes, issue 19) 9 gates after O3
(4,279 -> 4,270, 1.3 s, depth 10 both); on trained digits 1 gate, but only at depth 5 for depth 4
(so only ``O3-area`` takes it); nothing on the trained MNIST net (its AIG form comes back at
17,866 gates and a deeper level for 17,864). Circuits above ``MAX_GATES`` gates are returned
unchanged: each attempt costs one run of the rewriting pipeline on a circuit ~1.5x larger.
"""
from __future__ import annotations

from typing import Callable

from lgc.ir import Circuit, depth
from lgc.ir.formats import aiger

#: Largest circuit (gates) the pass restructures; above it the circuit is returned unchanged. Each
#: attempt reruns the rewrites on a ~1.5x larger AIG, and O3 calls the pass once per round: on the
#: trained MNIST and random 48K-gate nets (17,864 and 11,723 gates after O3) it gained nothing and
#: took O3 from 12 s to 26 s and from 9 s to 20 s; conv (4.3K) and digits (1.7K) stay under the bound.
MAX_GATES = 10_000


def as_aig(circuit: Circuit) -> Circuit:
    """``circuit`` as an AND/inverter circuit with the same inputs, outputs, head and encoder
    (through the AIGER writer and reader, in memory)."""
    return aiger.loads(aiger.dumps(circuit, binary=True))


def restructure(circuit: Circuit, rewrite: Callable[[Circuit], Circuit], *, depth_bound: bool = True) -> Circuit:
    """``rewrite(as_aig(circuit))`` when it has fewer gates (and, with ``depth_bound``, no greater
    depth) than ``circuit``, repeated until an attempt gains nothing; else ``circuit`` itself.
    ``rewrite``: a function-preserving rewriting pipeline (the pass manager passes O3's)."""
    if circuit.num_gates == 0 or circuit.num_gates > MAX_GATES:
        return circuit
    bound = depth(circuit)
    best = circuit
    while True:  # each accepted attempt removes at least one gate
        candidate = rewrite(as_aig(best))
        if candidate.num_gates >= best.num_gates or (depth_bound and depth(candidate) > bound):
            break
        best = candidate
    return best
