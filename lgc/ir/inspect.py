"""Looking at circuits: statistics, fan-out, reachability, and a networkx view for small graphs.

``stats`` is O(gates) numpy work plus one levels() computation; ``to_networkx`` builds one
Python object per node and is meant for small circuits or regions (notebooks, drawings).
"""
from __future__ import annotations

import dataclasses
import html
from typing import Any

import numpy as np

from . import ops as _ops
from .circuit import Circuit, CircuitError, GroupSumHead
from .levels import levels, used_operands
from .liveness import fan_out, live_nodes


@dataclasses.dataclass
class CircuitStats:
    """Summary of a circuit; prints as a table and renders in a notebook."""

    num_inputs: int
    num_gates: int
    num_outputs: int
    depth: int
    gates_by_op: dict[str, int]
    gates_per_level: list[int]
    fan_out_histogram: dict[str, int]
    unused_inputs: np.ndarray
    dead_gates: int
    head: GroupSumHead | None
    negated_outputs: int = 0

    def rows(self) -> list[tuple[str, str]]:
        ops = ", ".join(f"{k} {v}" for k, v in sorted(self.gates_by_op.items(), key=lambda kv: -kv[1]) if v)
        fo = ", ".join(f"{k}: {v}" for k, v in self.fan_out_histogram.items())
        head = "raw bits" if self.head is None else f"group sum, k={self.head.k}, tau={self.head.tau:g}"
        return [
            ("inputs", f"{self.num_inputs} ({self.unused_inputs.size} unused)"),
            ("gates", f"{self.num_gates} ({self.dead_gates} dead: reach no output)"),
            ("outputs", f"{self.num_outputs}" + (f" ({self.negated_outputs} negated)" if self.negated_outputs else "")),
            ("readout", head),
            ("depth", f"{self.depth}"),
            ("gates by op", ops or "-"),
            ("fan-out (nodes)", fo or "-"),
        ]

    def __str__(self) -> str:
        rows = self.rows()
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                       f"{html.escape(v)}</td></tr>" for k, v in self.rows())
        return f"<table>{body}</table>"

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["unused_inputs"] = self.unused_inputs.tolist()
        d["head"] = None if self.head is None else self.head.to_json()
        return d


def stats(circuit: Circuit) -> CircuitStats:
    circuit.validate()
    n = circuit.num_inputs
    lv = levels(circuit)
    fo = fan_out(circuit)
    live = live_nodes(circuit)
    by_op = np.bincount(circuit.op, minlength=16)
    buckets = [(0, 0), (1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (17, None)]
    hist = {}
    for lo, hi in buckets:
        key = f"{lo}" if lo == hi else (f"{lo}+" if hi is None else f"{lo}-{hi}")
        sel = (fo >= lo) & (True if hi is None else fo <= hi)
        hist[key] = int(np.count_nonzero(sel))
    return CircuitStats(
        num_inputs=n, num_gates=circuit.num_gates, num_outputs=circuit.num_outputs,
        depth=int(lv.max()) if lv.size else 0,
        gates_by_op={_ops.OP_NAMES[i]: int(c) for i, c in enumerate(by_op)},
        gates_per_level=np.bincount(lv)[1:].tolist() if lv.size else [],
        fan_out_histogram=hist,
        unused_inputs=np.flatnonzero(~live[:n]),
        dead_gates=int(np.count_nonzero(~live[n:])),
        head=circuit.head,
        negated_outputs=circuit.num_negated_outputs,
    )


def to_networkx(circuit: Circuit, *, max_nodes: int = 200_000):
    """A ``networkx.MultiDiGraph``: node attrs ``kind`` ('input'/'gate'), ``op``, ``op_name``,
    ``level``; edges operand -> gate with attr ``operand`` ('a'/'b') and ``used``; graph attrs
    ``num_inputs``, ``outputs``, ``output_negated``, ``head``. A MultiDiGraph, since a gate may read one node twice."""
    import networkx as nx

    circuit.validate()
    if circuit.num_nodes > max_nodes:
        raise ValueError(f"circuit has {circuit.num_nodes} nodes; to_networkx is for small graphs "
                         f"(raise max_nodes= to force it)")
    g = nx.MultiDiGraph(num_inputs=circuit.num_inputs, outputs=circuit.outputs.tolist(),
                        output_negated=circuit.output_negated.tolist(),
                        head=None if circuit.head is None else circuit.head.to_json())
    n = circuit.num_inputs
    for i in range(n):
        g.add_node(i, kind="input", level=0)
    lv = levels(circuit)
    use_a, use_b = used_operands(circuit)
    for i, (o, a, b) in enumerate(zip(circuit.op.tolist(), circuit.a.tolist(), circuit.b.tolist())):
        g.add_node(n + i, kind="gate", op=o, op_name=_ops.OP_NAMES[o], level=int(lv[i]))
        g.add_edge(a, n + i, operand="a", used=bool(use_a[i]))
        g.add_edge(b, n + i, operand="b", used=bool(use_b[i]))
    return g


def from_networkx(graph) -> Circuit:
    """Inverse of :func:`to_networkx` (node ids must follow the IR's numbering)."""
    try:
        n = int(graph.graph["num_inputs"])
        total = graph.number_of_nodes()
        op = np.zeros(total - n, dtype=np.int64)
        a = np.zeros(total - n, dtype=np.int64)
        b = np.zeros(total - n, dtype=np.int64)
        for node, data in graph.nodes(data=True):
            if data.get("kind") == "gate":
                op[node - n] = data["op"]
        for src, dst, data in graph.edges(data=True):
            (a if data["operand"] == "a" else b)[dst - n] = src
        return Circuit(n, op, a, b, graph.graph["outputs"], output_negated=graph.graph.get("output_negated"),
                       head=GroupSumHead.from_json(graph.graph.get("head"))).validate()
    except (KeyError, IndexError, TypeError) as e:
        raise CircuitError(f"graph is not an lgc circuit graph ({type(e).__name__}: {e})") from None
