"""Optimisation passes (pure ``Circuit -> Circuit`` functions, vectorised with numpy), the pass
manager (``optimize``, named ``PIPELINES``, ``PassReport``) and equivalence checking
(``equivalent``: random simulation, exhaustive enumeration, SAT miter).

Every pass preserves the circuit's function exactly, its inputs, head, input encoder and meta;
rewriting passes also sweep away dead gates whenever they rewrite anything (``layers`` boundaries
are remapped), and return the input circuit itself when they have nothing to do.
"""
from .absorb_not import absorb_not
from .constant_fold import constant_fold
from .cut_rewrite import cut_rewrite, cut_rewrite_area
from .dead_gates import dead_gate_elimination
from .extract_pairs import extract_pairs, extract_pairs_area
from .fraig import fraig
from .level_sort import level_sort
from .equivalence import EquivalenceResult, EquivalenceTimeout, equivalent, sat_solver_available
from .merge_complements import merge_complements
from .output_polarity import output_polarity
from .manager import PASSES, PIPELINES, PRELUDES, PassReport, PassRun, optimize, run_pipeline
from .passthrough import collapse_passthrough
from .refactor import refactor, refactor_area
from .restructure import restructure
from .resub import resub, resub_area
from .same_operand import simplify_same_operand
from .structural_hash import canonical_form, structural_hash

from .external_abc import ABCError, abc  # external pass (Berkeley ABC on the AIGER form)

__all__ = [
    "ABCError", "EquivalenceResult", "EquivalenceTimeout", "PASSES", "PIPELINES", "PRELUDES", "PassReport", "PassRun", "absorb_not", "canonical_form",
    "collapse_passthrough", "constant_fold", "cut_rewrite", "cut_rewrite_area", "dead_gate_elimination", "equivalent", "extract_pairs", "extract_pairs_area", "fraig", "level_sort", "merge_complements", "optimize", "output_polarity",
    "abc", "refactor", "refactor_area", "restructure", "resub", "resub_area", "run_pipeline", "sat_solver_available", "simplify_same_operand", "structural_hash",
]
