"""Dead-gate elimination: drop every gate that reaches no output.

Walks backwards from the outputs through used operands only (an ignored operand, such as
both operands of a constant or b of a copy of a, is not a use), then renumbers the surviving
gates compactly in their old order, so topological order holds. Primary inputs always stay
(``lgc.ir.stats`` reports unused ones). O(gates log gates) numpy work, no per-gate loop.
"""
from __future__ import annotations

from lgc.ir import Circuit

from ._rewrite import compact, live_gates


def dead_gate_elimination(circuit: Circuit) -> Circuit:
    """The circuit without its dead gates; ``layers`` boundaries are remapped, ``meta`` kept."""
    circuit.validate()
    keep = live_gates(circuit)
    if keep.all():
        return circuit
    return compact(circuit, circuit.op, circuit.a, circuit.b, circuit.outputs, keep)
