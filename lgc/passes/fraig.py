"""Functional reduction (FRAIG): merge gates that compute the same function, or its negation, as an
earlier node although they differ in structure — resubstitution by an existing signal under the
circuit's satisfiability don't-cares (input combinations no input can produce at a gate).

Candidates come from simulation: every node's value on ``vectors`` random inputs (64 per word),
normalised so a node and its complement share a signature; nodes with equal signatures form a
class whose lowest-numbered node is the representative. Each other member is then proved equal
(or complementary) to the representative by a SAT miter over the whole circuit's CNF (python-sat,
incremental, one assumption per candidate, ``conflict_budget`` conflicts each); only proven pairs
merge: readers read the representative and absorb a negation in their truth table (outputs that
read a complement member read the representative as a negated literal). One-input gates are left to ``absorb_not``. Circuits above
``max_gates`` are returned unchanged (the CNF of millions of gates does not pay for the few merges
found). Cost: one simulation of ``vectors`` samples, one CNF of 4 clauses per gate, and one SAT
call per candidate pair.
"""
from __future__ import annotations

import numpy as np

from lgc.ir import Circuit, ops as _ops, simulate_words

from ._rewrite import ONE_INPUT, outputs_to_roots, sweep
from .equivalence import _gate_clauses

MAX_GATES = 1_000_000


def fraig(circuit: Circuit, *, vectors: int = 4096, conflict_budget: int = 10_000, max_gates: int = MAX_GATES,
          seed: int = 0) -> Circuit:
    """Merge functionally equal (or complementary) gates, proved by SAT. Function preserved exactly.

    Raises ImportError when python-sat is missing."""
    from pysat.solvers import Solver
    circuit.validate()
    n, g, total = circuit.num_inputs, circuit.num_gates, circuit.num_nodes
    if g == 0 or g > max_gates:
        return circuit
    words = max(1, min(vectors // 64, (1 << 27) // (8 * total)))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, np.iinfo(np.int64).max, size=(n, words), dtype=np.int64).astype(np.uint64)
    x = (x << np.uint64(1)) | rng.integers(0, 2, size=(n, words), dtype=np.int64).astype(np.uint64)
    values = simulate_words(circuit.replace(outputs=np.arange(total, dtype=np.int32), output_negated=None, head=None), x)
    flip = (values[:, 0] & np.uint64(1)).astype(bool)
    values[flip] = ~values[flip]
    member = np.ones(total, dtype=bool)
    member[n:] = ~ONE_INPUT[circuit.op]
    nodes = np.flatnonzero(member)
    rows = np.ascontiguousarray(values[nodes]).view(np.dtype((np.void, 8 * words))).reshape(-1)
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    rep = nodes[first[inverse.reshape(-1)]]  # lowest node of each class (nodes ascend)
    cand = np.flatnonzero((rep != nodes) & (nodes >= n))
    if cand.size == 0:
        return circuit
    members, reps = nodes[cand], rep[cand]
    parity = flip[members] ^ flip[reps]
    clauses, var = _gate_clauses(circuit, n + 1)
    next_var = n + g + 1
    root = np.arange(total, dtype=np.int64)
    par = np.zeros(total, dtype=bool)
    with Solver(name="cadical153", bootstrap_with=clauses.tolist()) as s:
        for m, r, p in zip(members.tolist(), reps.tolist(), parity.tolist()):
            vm, vr = int(var[m]), int(var[r]) * (-1 if p else 1)
            d = next_var
            next_var += 1
            s.add_clause([-d, vm, vr])   # d -> m != r'
            s.add_clause([-d, -vm, -vr])
            s.conf_budget(conflict_budget)
            if s.solve_limited(assumptions=[d]) is False:  # unsatisfiable: m == r' for every input
                root[m], par[m] = r, p
            s.add_clause([-d])
    if not par.any() and (root == np.arange(total)).all():
        return circuit
    op = circuit.op
    op = np.where(par[circuit.a], _ops.NEGATE_A[op], op)
    op = np.where(par[circuit.b], _ops.NEGATE_B[op], op)
    base, out = outputs_to_roots(circuit, root, par)   # a complement member's outputs: negated literals
    return sweep(base, op.astype(np.uint8), root[circuit.a], root[circuit.b], out)
