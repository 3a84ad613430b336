"""Drawing a small region of a circuit (the input cone of one node) with networkx and matplotlib.

Costs one networkx node per drawn node: meant for tens to hundreds of nodes.
"""
from __future__ import annotations

import os

import numpy as np

from . import ops as _ops
from .circuit import Circuit
from .levels import used_operands


def cone(circuit: Circuit, node: int, depth: int = 3) -> set[int]:
    """Node ids within ``depth`` gate levels upstream of ``node`` (used operands only)."""
    circuit.validate()
    if not 0 <= node < circuit.num_nodes:
        raise ValueError(f"node {node} is out of range 0..{circuit.num_nodes - 1}")
    use_a, use_b = used_operands(circuit)
    n = circuit.num_inputs
    seen, frontier = {node}, [node]
    for _ in range(depth):
        nxt = []
        for v in frontier:
            if v >= n:
                g = v - n
                for used, src in ((use_a[g], circuit.a[g]), (use_b[g], circuit.b[g])):
                    if used and int(src) not in seen:
                        seen.add(int(src))
                        nxt.append(int(src))
        frontier = nxt
    return seen


def interesting_output(circuit: Circuit) -> int:
    """The node worth drawing by default: the first output that is a gate other than a constant
    (else the first output that is a gate, else the first output). ValueError without outputs."""
    out = np.asarray(circuit.outputs, dtype=np.int64)
    if out.size == 0:
        raise ValueError("the circuit has no outputs to draw")
    gates = out[out >= circuit.num_inputs]
    if gates.size == 0:
        return int(out[0])
    op = circuit.op[gates - circuit.num_inputs]
    varying = gates[~np.isin(op, (_ops.FALSE, _ops.TRUE))]
    return int(varying[0] if varying.size else gates[0])


def draw_cone(circuit: Circuit, node: int, path: str | os.PathLike, depth: int = 3) -> None:
    """Render the cone of ``node`` to an image file (PNG, ...), laid out by level: inputs ``x<i>``,
    gates labelled by op name and node id, each edge labelled ``A`` or ``B`` (``A,B`` when both
    operands read the same node) by the operand it feeds, so asymmetric ops read unambiguously.
    Needs matplotlib (``pip install 'lgc[plot]'``; MissingDependency otherwise)."""
    from .._optional import require
    require("matplotlib", extra="plot", purpose="drawing a circuit")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    nodes = cone(circuit, node, depth)
    n = circuit.num_inputs
    use_a, use_b = used_operands(circuit)
    g = nx.DiGraph()
    for v in nodes:
        label = f"x{v}" if v < n else f"{_ops.OP_NAMES[circuit.op[v - n]]}\n#{v}"
        g.add_node(v, label=label)
    operand: dict[tuple[int, int], str] = {}
    for v in nodes:
        if v >= n:
            for used, src, name in ((use_a[v - n], circuit.a[v - n], "A"), (use_b[v - n], circuit.b[v - n], "B")):
                if used and int(src) in nodes:
                    g.add_edge(int(src), v)
                    key = (int(src), v)
                    operand[key] = f"{operand[key]},{name}" if key in operand else name
    layer = {v: 0 for v in g}
    for v in sorted(g):  # node ids are topological
        preds = list(g.predecessors(v))
        layer[v] = 1 + max((layer[p] for p in preds), default=-1) if preds else 0
    nx.set_node_attributes(g, layer, "layer")
    pos = nx.multipartite_layout(g, subset_key="layer")
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * np.sqrt(len(g)) * 3), 6))
    nx.draw_networkx(g, pos, ax=ax, labels=nx.get_node_attributes(g, "label"), node_size=900,
                     node_color=["#cde" if v < n else "#fdb" for v in g], font_size=7, arrows=True)
    nx.draw_networkx_edge_labels(g, pos, edge_labels=operand, ax=ax, font_size=7, label_pos=0.3)
    ax.set_title(f"input cone of node {node} ({depth} levels)")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
