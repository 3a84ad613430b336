"""Shared-pair extraction over AND and XOR supergates: compute a literal pair once for every tree using it.

Every op but XOR/XNOR and the trivial ones is an AND of two literals with an optional output
negation (OR = NOT AND of negated literals), so a trained net is mostly maximal fanout-free AND
trees (*supergates*) over literals. Where the same pair of literals sits in several supergates of
three or more leaves (overlapping receptive fields of a convolution, pooling ORs), one gate computing
their AND serves them all (k supergates: k - 1 gates saved; k if a gate computing that AND already
exists). Rounds: find supergates (vectorised pointer jumping to each tree's root), count pairs with
``np.unique``, then take pairs greedily by gain (a Python loop over the few pairs that gain, each
supergate in one pair per round) and rebuild each changed supergate as a tree that pairs its two
shallowest literals first. XOR/XNOR trees get the same treatment (leaf negations and XNORs
fold into the root's polarity). By default a supergate is changed only where its root's level does not
grow (``depth_bound=False``: area alone). Repeats until no pair gains. Cost per round: O(gates)
numpy work plus O(pairs of leaves) for supergates of up to ``MAX_LEAVES`` leaves.
"""
from __future__ import annotations

import heapq
import itertools

import numpy as np

from lgc.ir import Circuit, levels as _levels, ops as _ops

from ._rewrite import compact, live_gates, until_unchanged

MAX_LEAVES = 12
_MAX_ROUNDS = 30
# op -> (output negated, a negated, b negated) for ops that are an AND of two literals
_AND = {_ops.AND: (0, 0, 0), _ops.A_AND_NOT_B: (0, 0, 1), _ops.NOT_A_AND_B: (0, 1, 0), _ops.NOR: (0, 1, 1),
        _ops.NAND: (1, 0, 0), _ops.NOT_A_OR_B: (1, 0, 1), _ops.A_OR_NOT_B: (1, 1, 0), _ops.OR: (1, 1, 1)}
IS_AND = np.zeros(16, dtype=bool)
OUT_NEG = np.zeros(16, dtype=bool)
A_NEG = np.zeros(16, dtype=bool)
B_NEG = np.zeros(16, dtype=bool)
for _op, (_o, _na, _nb) in _AND.items():
    IS_AND[_op], OUT_NEG[_op], A_NEG[_op], B_NEG[_op] = True, _o, _na, _nb


IS_XOR = np.zeros(16, dtype=bool)
IS_XOR[[_ops.XOR, _ops.XNOR]] = True
XOR_NEG = np.zeros(16, dtype=bool)
XOR_NEG[_ops.XNOR] = True


def _gate_op(kind: str, na: int, nb: int, out: int = 0) -> int:
    if kind == "xor":
        return _ops.XNOR if (na ^ nb ^ out) else _ops.XOR
    op = _ops.AND
    if na:
        op = int(_ops.NEGATE_A[op])
    if nb:
        op = int(_ops.NEGATE_B[op])
    return int(_ops.NEGATE_OUT[op]) if out else op


def supergates(circuit: Circuit, kind: str = "and"):
    """(root node per leaf int64[L], leaf literal 2 * node + negated int64[L], root output negated
    bool[nodes]): the leaves of every maximal fanout-free AND tree (``kind="xor"``: XOR tree, leaf
    literals positive, negations gathered at the root), grouped by root, literals ascending."""
    n, total = circuit.num_inputs, circuit.num_nodes
    op, a, b = circuit.op, circuit.a.astype(np.int64), circuit.b.astype(np.int64)
    fo = np.bincount(a[~_ops.IGNORES_A[op]], minlength=total) + np.bincount(b[~_ops.IGNORES_B[op]], minlength=total)
    fo += np.bincount(circuit.outputs, minlength=total)
    xor = kind == "xor"
    member, negs = (IS_XOR, XOR_NEG) if xor else (IS_AND, OUT_NEG)
    a_neg, b_neg = (np.zeros(16, bool), np.zeros(16, bool)) if xor else (A_NEG, B_NEG)
    is_and = np.zeros(total, dtype=bool)
    is_and[n:] = member[op]
    out_neg = np.zeros(total, dtype=bool)
    out_neg[n:] = negs[op]
    gates = np.flatnonzero(member[op])
    absorbed = np.zeros(total, dtype=bool)
    parent = np.arange(total, dtype=np.int64)
    for operand, neg in ((a, a_neg), (b, b_neg)):
        x, nx = operand[gates], neg[op[gates]]
        ok = is_and[x] & (fo[x] == 1) & (xor | (nx == out_neg[x])) & (a[gates] != b[gates])
        absorbed[x[ok]] = True
        parent[x[ok]] = n + gates[ok]
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    if xor:  # the root's negation is the parity of the tree's XNORs
        root_neg = np.bincount(root[n + gates], weights=out_neg[n + gates], minlength=total).astype(np.int64) % 2 == 1
    else:
        root_neg = out_neg
    leaf_root, leaf_lit = [], []
    for operand, neg in ((a, a_neg), (b, b_neg)):
        x = operand[gates]
        keep = ~absorbed[x] | (parent[x] != n + gates)
        leaf_root.append(root[n + gates[keep]])
        leaf_lit.append(2 * x[keep] + neg[op[gates[keep]]])
    leaf_root, leaf_lit = np.concatenate(leaf_root), np.concatenate(leaf_lit)
    order = np.lexsort((leaf_lit, leaf_root))
    return leaf_root[order], leaf_lit[order], root_neg


def _tree_level(levels: list[int]) -> int:
    """Level of a tree that repeatedly pairs the two shallowest literals."""
    h = list(levels)
    heapq.heapify(h)
    while len(h) > 1:
        x, y = heapq.heappop(h), heapq.heappop(h)
        heapq.heappush(h, max(x, y) + 1)
    return h[0]


def _one_round(circuit: Circuit, depth_bound: bool, kind: str) -> Circuit:
    n, total = circuit.num_inputs, circuit.num_nodes
    if total >= (1 << 30):
        return circuit
    leaf_root, leaf_lit, root_neg = supergates(circuit, kind)
    if leaf_root.size == 0:
        return circuit
    start = np.flatnonzero(np.concatenate([[True], leaf_root[1:] != leaf_root[:-1]]))
    size = np.diff(np.concatenate([start, [leaf_root.size]]))
    roots = leaf_root[start]
    dup = np.zeros(leaf_lit.size, dtype=bool)
    dup[1:] = (leaf_lit[1:] >> 1 == leaf_lit[:-1] >> 1) & (leaf_root[1:] == leaf_root[:-1])
    clean = np.bincount(np.repeat(np.arange(roots.size), size), weights=dup, minlength=roots.size) == 0
    span = 2 * total
    # existing gates computing AND(l1, l2) exactly: two-leaf supergates with a positive output
    out_neg = root_neg[roots]
    two = (size == 2) & clean
    prov_key = leaf_lit[start[two]] * span + leaf_lit[start[two] + 1]
    provider = dict(zip(prov_key.tolist(), (2 * roots[two] + out_neg[two]).tolist()))
    pk, ps = [], []
    big = np.flatnonzero((size >= 3) & (size <= MAX_LEAVES) & clean)
    for s in np.unique(size[big]):
        which = big[size[big] == s]
        ij = np.array(list(itertools.combinations(range(int(s)), 2)))
        base = start[which][:, None]
        pk.append((leaf_lit[base + ij[:, 0]] * span + leaf_lit[base + ij[:, 1]]).reshape(-1))
        ps.append(np.repeat(which, ij.shape[0]))
    if not pk:
        return circuit
    pk, ps = np.concatenate(pk), np.concatenate(ps)
    order = np.argsort(pk, kind="stable")
    pk, ps = pk[order], ps[order]
    keys, first, counts = np.unique(pk, return_index=True, return_counts=True)
    has_prov = np.array([k in provider for k in keys.tolist()], dtype=bool) if provider else np.zeros(keys.size, bool)
    gain = counts - 1 + has_prov
    cand = np.flatnonzero(gain >= 1)
    if cand.size == 0:
        return circuit
    lv = np.concatenate([np.zeros(n, dtype=np.int64), _levels(circuit).astype(np.int64)])
    used = np.zeros(roots.size, dtype=bool)
    new_leaves: dict[int, list[int]] = {}  # supergate -> its new leaf literals (negative: new pair gate -1-j)
    pair_gates: list[tuple[int, int, int]] = []  # (l1, l2, first user root)
    for c in cand[np.argsort(-gain[cand], kind="stable")].tolist():
        key = int(keys[c])
        l1, l2 = divmod(key, span)
        prov = provider.get(key)
        users = [int(s) for s in ps[first[c]:first[c] + counts[c]].tolist()
                 if not used[s] and (prov is None or prov >> 1 < roots[s])]
        pl = 1 + max(lv[l1 >> 1], lv[l2 >> 1]) if prov is None else lv[prov >> 1]
        fit = []
        for s in users:
            lits = leaf_lit[start[s]:start[s] + size[s]].tolist()
            rest = [x for x in lits if x not in (l1, l2)]
            if not depth_bound or _tree_level([int(lv[x >> 1]) for x in rest] + [int(pl)]) <= lv[roots[s]]:
                fit.append((s, rest))
        if len(fit) - (prov is None) < 1:
            continue
        if prov is None:
            pair_gates.append((l1, l2, min(int(roots[s]) for s, _ in fit)))
            lit = -len(pair_gates)
        else:
            lit = prov
        for s, rest in fit:
            used[s] = True
            new_leaves[s] = rest + [lit]
    if not new_leaves:
        return circuit
    return _rebuild(circuit, roots, new_leaves, pair_gates, lv, kind, root_neg)


def _rebuild(circuit: Circuit, roots: np.ndarray, new_leaves: dict, pair_gates: list, lv: np.ndarray,
             kind: str, root_neg: np.ndarray) -> Circuit:
    """The circuit with each changed supergate rebuilt over its new leaves and the pair gates added."""
    n, g = circuit.num_inputs, circuit.num_gates
    new_op, new_a, new_b, new_key = [], [], [], []
    pair_node = []
    for j, (l1, l2, user) in enumerate(pair_gates):
        pair_node.append(n + g + len(new_op))
        new_op.append(_gate_op(kind, l1 & 1, l2 & 1))
        new_a.append(l1 >> 1)
        new_b.append(l2 >> 1)
        new_key.append((user - n) * 64 + j % 32)  # before its first user (at most 32 pair gates share a user)
    alias = np.arange(circuit.num_nodes, dtype=np.int64)
    for s, lits in new_leaves.items():
        root = int(roots[s])
        heap = []
        for x in lits:
            if x < 0:
                node, neg = pair_node[-x - 1], 0
                level = 1 + max(lv[pair_gates[-x - 1][0] >> 1], lv[pair_gates[-x - 1][1] >> 1])
            else:
                node, neg, level = x >> 1, x & 1, lv[x >> 1]
            heap.append((int(level), node, neg))
        heapq.heapify(heap)
        seq = 32
        while len(heap) > 1:
            (l_a, x_a, n_a), (l_b, x_b, n_b) = heapq.heappop(heap), heapq.heappop(heap)
            last = len(heap) == 0
            node = n + g + len(new_op)
            new_op.append(_gate_op(kind, n_a, n_b, int(root_neg[root]) if last else 0))
            new_a.append(x_a)
            new_b.append(x_b)
            new_key.append((root - n) * 64 + seq)
            seq += 1
            heapq.heappush(heap, (max(l_a, l_b) + 1, node, 0))
        alias[root] = heap[0][1]
    k = len(new_op)
    alias = np.concatenate([alias, np.arange(circuit.num_nodes, circuit.num_nodes + k)])
    op = np.concatenate([circuit.op, np.array(new_op, dtype=np.uint8)])
    a = alias[np.concatenate([circuit.a.astype(np.int64), np.array(new_a, dtype=np.int64)])]
    b = alias[np.concatenate([circuit.b.astype(np.int64), np.array(new_b, dtype=np.int64)])]
    key = np.concatenate([np.arange(g, dtype=np.int64) * 64 + 63, np.array(new_key, dtype=np.int64)])
    perm = np.argsort(key, kind="stable")
    new_id = np.empty(op.size, dtype=np.int64)
    new_id[perm] = np.arange(op.size)
    node_map = np.concatenate([np.arange(n), n + new_id])
    op, a, b = op[perm], node_map[a[perm]], node_map[b[perm]]
    out = node_map[alias[circuit.outputs.astype(np.int64)]]
    grown = circuit.replace(op=op, a=a.astype(np.int32), b=b.astype(np.int32), outputs=out.astype(np.int32),
                            layers=None)
    return compact(grown, grown.op, grown.a, grown.b, grown.outputs, live_gates(grown))


def extract_pairs(circuit: Circuit, *, depth_bound: bool = True) -> Circuit:
    """Share literal pairs among AND supergates to a fixed point (see the module docstring).
    Function preserved exactly; with ``depth_bound`` no supergate root gets deeper."""
    circuit.validate()

    def and_then_xor(c: Circuit) -> Circuit:   # one round over AND trees, then XOR trees; c itself if neither gains
        for kind in ("and", "xor"):
            step = _one_round(c, depth_bound, kind)
            if step.num_gates < c.num_gates:
                c = step
        return c

    return until_unchanged(and_then_xor, circuit, _MAX_ROUNDS)


def extract_pairs_area(circuit: Circuit) -> Circuit:
    """``extract_pairs`` for area alone: the depth may grow."""
    return extract_pairs(circuit, depth_bound=False)
