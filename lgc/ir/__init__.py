"""lgc's gate-level IR: the Circuit, its invariants, files, the reference simulator and inspection.

Imports numpy only (networkx lazily), so a compiled network deploys without PyTorch.
"""
from . import ops
from .circuit import Circuit, CircuitError, GroupSumHead, InputEncoder
from .inspect import CircuitStats, from_networkx, stats, to_networkx
from .liveness import fan_out, live_nodes
from .levels import depth, level_order, levels, used_operands
from .packed import PackedBits, input_bits, pack_bits, packed_input, unpack_bits
from .random import example_circuit, random_layered_circuit
from .serialize import load, save
from .simulate import group_sum, group_sum_words, predict, simulate, simulate_words

__all__ = [
    "Circuit", "CircuitError", "CircuitStats", "GroupSumHead", "InputEncoder", "PackedBits",
    "depth", "example_circuit", "fan_out", "from_networkx", "group_sum", "group_sum_words", "input_bits", "level_order",
    "levels", "live_nodes", "load", "ops", "pack_bits", "packed_input", "predict",
    "random_layered_circuit", "save", "simulate", "simulate_words", "stats", "to_networkx",
    "unpack_bits", "used_operands",
]
