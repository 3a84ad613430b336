"""The pass manager: named pipelines run to a fixed point, with a per-pass report.

``optimize(circuit, level)`` runs the level's pipeline round after round until a fixed point:
every pass has run, since the last change, without changing anything (each pass is idempotent,
so the pass that made the last change need not run again). ``max_rounds`` caps the rounds; the
report says whether the fixed point was reached. Each pass run is timed and recorded (gates
before/after, depth after, seconds); with ``report=True`` the depth costs one ``levels`` call
per pass run that changed the circuit, O(gates * depth). With ``LGC_DEBUG=1`` every intermediate circuit is checked by
a fresh (uncached) ``validate()``, so a broken pass is named at once.
"""
from __future__ import annotations

import dataclasses
import html
import os
import time
from typing import Callable, Sequence

from lgc.ir import Circuit, depth

from ._rewrite import live_mask
from .absorb_not import absorb_not
from .constant_fold import constant_fold
from .cut_rewrite import cut_rewrite, cut_rewrite_area
from .dead_gates import dead_gate_elimination
from .extract_pairs import extract_pairs, extract_pairs_area
from .fraig import fraig
from .level_sort import level_sort
from .merge_complements import merge_complements
from .output_polarity import output_polarity
from .passthrough import collapse_passthrough
from .refactor import refactor, refactor_area
from .restructure import restructure
from .resub import resub, resub_area
from .same_operand import simplify_same_operand
from .structural_hash import structural_hash

#: O2 runs its rewriting passes (cut rewriting, refactoring, pair extraction) only on circuits of at
#: most this many gates (after cleanup: a trained 48K-gate net is ~18K): they cost 10-1000x the
#: cleanup passes per gate, so a 5.12M-gate net keeps O2's cleanup-only time. O3 has no such bound
#: (refactoring has its own, ``refactor.MAX_GATES``).
O2_REWRITE_MAX_GATES = 100_000


def _small(fn: Callable[[Circuit], Circuit], name: str) -> Callable[[Circuit], Circuit]:
    def run(circuit: Circuit) -> Circuit:
        return circuit if circuit.num_gates > O2_REWRITE_MAX_GATES else fn(circuit)
    run.__name__ = name
    run.__doc__ = f"``{fn.__name__}`` on circuits of at most O2_REWRITE_MAX_GATES gates (larger: unchanged)."
    return run


PASSES: dict[str, Callable[[Circuit], Circuit]] = {
    "dead_gate_elimination": dead_gate_elimination,
    "constant_fold": constant_fold,
    "collapse_passthrough": collapse_passthrough,
    "simplify_same_operand": simplify_same_operand,
    "absorb_not": absorb_not,
    "structural_hash": structural_hash,
    "merge_complements": merge_complements,
    "output_polarity": output_polarity,
    "cut_rewrite": cut_rewrite,
    "cut_rewrite_area": cut_rewrite_area,
    "cut_rewrite_small": _small(cut_rewrite, "cut_rewrite_small"),
    "refactor": refactor,
    "refactor_area": refactor_area,
    "refactor_small": _small(refactor, "refactor_small"),
    "fraig": fraig,
    "level_sort": level_sort,
    "extract_pairs": extract_pairs,
    "extract_pairs_area": extract_pairs_area,
    "extract_pairs_small": _small(extract_pairs, "extract_pairs_small"),
    "resub": resub,
    "resub_area": resub_area,
    "restructure": lambda c: restructure(c, lambda aig: run_pipeline(aig, _REWRITE)),
    "restructure_area": lambda c: restructure(c, lambda aig: run_pipeline(aig, _REWRITE_AREA), depth_bound=False),
}

_O1 = ("dead_gate_elimination", "constant_fold", "collapse_passthrough")
_CLEANUP = ("dead_gate_elimination", "constant_fold", "simplify_same_operand", "collapse_passthrough",
            "absorb_not", "output_polarity", "merge_complements")
# complement-aware hashing subsumes structural_hash; pair extraction, exact 4-cut rewriting and
# refactoring never deepen a node; O2 rewrites only circuits up to O2_REWRITE_MAX_GATES. Pair
# extraction goes first: sharing literal pairs before the cones are rewritten saves more (conv net:
# O3 4,282 gates against 4,298 with it last)
_O2 = _CLEANUP + ("extract_pairs_small", "cut_rewrite_small", "refactor_small")
_REWRITE = _CLEANUP + ("extract_pairs", "cut_rewrite", "refactor")
_REWRITE_AREA = _CLEANUP + ("extract_pairs_area", "cut_rewrite_area", "refactor_area")
# restructuring reruns _REWRITE on the AIG form; functional reduction (SAT-proved merges of equal
# gates) and don't-care resubstitution need python-sat
_O3 = _REWRITE + ("restructure", "fraig", "resub", "level_sort")   # the result stays in level order
#: Named pipelines (level -> pass names, run in order, round after round, to a fixed point).
#: ``O3-area`` is O3 rewriting for area alone (the depth may grow).
PIPELINES: dict[str, tuple[str, ...]] = {"O0": (), "O1": _O1, "O2": _O2, "O3": _O3,
                                         "O3-area": _REWRITE_AREA + ("restructure_area", "fraig", "resub_area",
                                                                     "level_sort")}
#: Pipelines that start from another's fixed point: (that pipeline, passes run once), then their own
#: loop. O3 starts from O2's result in level order: the greedy rewrites then see one canonical order
#: (trained conv net: 4,094 gates against 4,100 from the unoptimised net; the other nets unchanged).
PRELUDES: dict[str, tuple[str, tuple[str, ...]]] = {"O3": ("O2", ("level_sort",)), "O3-area": ("O2", ("level_sort",))}


@dataclasses.dataclass(frozen=True)
class PassRun:
    """One pass run: which round, which pass, gates before/after, depth after, wall seconds."""

    round: int
    name: str
    gates_before: int
    gates_after: int
    depth: int
    seconds: float


@dataclasses.dataclass
class PassReport:
    """What a pipeline did: one row per pass run; prints as a table, renders in a notebook."""

    pipeline: str
    gates_before: int
    depth_before: int
    runs: list[PassRun] = dataclasses.field(default_factory=list)
    rounds: int = 0
    converged: bool = True
    unused_inputs: int = 0  #: primary inputs that reach no output in the result (inputs are never removed)

    @property
    def gates_after(self) -> int:
        return self.runs[-1].gates_after if self.runs else self.gates_before

    @property
    def depth_after(self) -> int:
        return self.runs[-1].depth if self.runs else self.depth_before

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.runs)

    def _table(self) -> tuple[list[str], list[list[str]]]:
        head = ["round", "pass", "gates before", "gates after", "removed", "depth", "seconds"]
        rows = [[str(r.round), r.name, f"{r.gates_before:,}", f"{r.gates_after:,}",
                 f"{r.gates_before - r.gates_after:,}", str(r.depth), f"{r.seconds:.3f}"] for r in self.runs]
        rows.append(["", "total", f"{self.gates_before:,}", f"{self.gates_after:,}",
                     f"{self.gates_before - self.gates_after:,}", f"{self.depth_before} -> {self.depth_after}",
                     f"{self.seconds:.3f}"])
        return head, rows

    def _summary(self) -> str:
        state = "fixed point reached" if self.converged else "stopped at max_rounds before a fixed point"
        return (f"pipeline {self.pipeline}: {self.rounds} round(s), {state}; "
                f"{self.unused_inputs} input(s) unused (inputs are kept)")

    def __str__(self) -> str:
        head, rows = self._table()
        widths = [max(len(x) for x in col) for col in zip(head, *rows)]
        line = lambda cells: "  ".join(c.rjust(w) if i != 1 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "\n".join([self._summary(), line(head), *(line(r) for r in rows)])

    def _repr_html_(self) -> str:
        head, rows = self._table()
        th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<p>{html.escape(self._summary())}</p><table><tr>{th}</tr>{body}</table>"


def run_pipeline(circuit: Circuit, passes: str | Sequence[str], *, max_rounds: int = 20,
                 report: bool = False, name: str | None = None) -> "Circuit | tuple[Circuit, PassReport]":
    """Run ``passes`` (a pipeline name from PIPELINES, or pass names) to a fixed point. A named
    pipeline with a prelude (``PRELUDES``) first runs the prelude's pipeline to its fixed point and
    its single passes once; the report lists every run, prelude first."""
    prelude: tuple[str, tuple[str, ...]] | None = None
    if isinstance(passes, str):
        if passes not in PIPELINES:
            raise ValueError(f"unknown pipeline {passes!r}; known: {', '.join(PIPELINES)}")
        prelude = PRELUDES.get(passes)
        name, passes = name or passes, PIPELINES[passes]
    unknown = [p for p in passes if p not in PASSES]
    if unknown:
        raise ValueError(f"unknown pass(es) {unknown}; known: {', '.join(PASSES)}")
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected an lgc.ir.Circuit, got {type(circuit).__name__}")
    circuit.validate()
    debug = os.environ.get("LGC_DEBUG", "") not in ("", "0")
    rep = PassReport(name or "custom", circuit.num_gates, depth(circuit) if report else -1)
    current_depth = rep.depth_before
    rnd, prelude_converged = 0, True

    def run(pname: str) -> bool:
        nonlocal circuit, current_depth
        before = circuit
        t0 = time.perf_counter()
        circuit = PASSES[pname](circuit)
        seconds = time.perf_counter() - t0
        changed = not (circuit is before or circuit == before)
        if debug:
            circuit.replace().validate()  # replace() gives an unvalidated copy: a fresh check
        if report:
            if changed:
                current_depth = depth(circuit)
            rep.runs.append(PassRun(rnd, pname, before.num_gates, circuit.num_gates, current_depth, seconds))
        return changed

    if prelude is not None:
        if report:
            circuit, first = run_pipeline(circuit, prelude[0], max_rounds=max_rounds, report=True)
            rep.runs.extend(first.runs)
            rnd, current_depth, prelude_converged = first.rounds, first.depth_after, first.converged
        else:
            circuit = run_pipeline(circuit, prelude[0], max_rounds=max_rounds)
        rnd += 1
        for pname in prelude[1]:
            run(pname)
    # Every pass is idempotent, so once the passes after the last one that changed anything have
    # all run without a change, the whole pipeline is at a fixed point (before a first change,
    # every pass must have run once unchanged).
    streak, changed_ever, converged, start = 0, False, not passes, rnd
    while not converged and rnd - start < max_rounds:
        rnd += 1
        for pname in passes:
            changed = run(pname)
            streak = 0 if changed else streak + 1
            changed_ever |= changed
            if streak >= len(passes) - changed_ever:
                converged = True
                break
    rep.rounds = rnd
    rep.converged = converged and prelude_converged
    if report:
        rep.unused_inputs = int((~live_mask(circuit)[:circuit.num_inputs]).sum())
    return (circuit, rep) if report else circuit


def optimize(circuit: Circuit, level: int = 2, *, report: bool = False,
             max_rounds: int = 20, area_only: bool = False) -> "Circuit | tuple[Circuit, PassReport]":
    """Optimise at ``level`` 0..3: O0 nothing; O1 dead gates, constants, pass-throughs; O2 adds
    NOT absorption, output polarity (a gate the outputs read only negated computes the negation),
    a == b simplification, structural hashing modulo complement (AND/NAND, XOR/XNOR ... over the
    same operands merge) and, on circuits of at most ``O2_REWRITE_MAX_GATES`` gates, exact 4-cut
    rewriting, refactoring over cuts of up to 8 leaves and shared-pair extraction over AND/XOR
    trees, none of which lets a node's level grow unless ``area_only`` (pipeline ``O3-area``);
    O3 starts from O2's result with its gates in level order (``level_sort``), runs those rewrites
    at every size and adds functional reduction (``fraig``: SAT-proved
    merges of equal gates; needs python-sat), restructuring (``restructure``: the rewrites rerun on
    the AND/inverter form, kept when smaller and no deeper) and don't-care resubstitution (``resub``: a gate
    replaced by an existing signal, or by one gate over existing signals, where its window's
    observability don't-cares allow it; SAT-proved; same depth rule).

    Returns the circuit, or ``(circuit, PassReport)`` with ``report=True``. Each pipeline runs to
    a fixed point; every pass preserves the function exactly (check with ``equivalent``)."""
    if isinstance(level, bool) or int(level) != level or not 0 <= level <= 3:
        raise ValueError(f"optimisation level must be 0, 1, 2 or 3, got {level!r}")
    name = "O3-area" if area_only and int(level) == 3 else f"O{int(level)}"
    return run_pipeline(circuit, name, report=report, max_rounds=max_rounds)
