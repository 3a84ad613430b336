"""Helpers the subcommands share: reading a model file and timing a compiled net."""
from __future__ import annotations

import argparse
import math

import numpy as np


def add_model_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL",
                   help="a .pt checkpoint (lgc train), a .lgc circuit or compiled net, a .txt/.blif/.aag/.aig netlist, "
                        "or 'example'")


def add_opt_level(p: argparse.ArgumentParser) -> None:
    """``-O/--opt-level``, defaulting to ``lgc.api.DEFAULT_OPT_LEVEL`` as every API function does."""
    from lgc.api import DEFAULT_OPT_LEVEL
    p.add_argument("-O", "--opt-level", type=int, default=DEFAULT_OPT_LEVEL, choices=(0, 1, 2, 3),
                   help=f"optimisation level before code generation (default {DEFAULT_OPT_LEVEL}, as lgc.compile)")


def read_model(path: str):
    """MODEL argument -> Circuit, through ``lgc.load`` (a .pt checkpoint is lowered; its binariser
    becomes the input encoder; a compiled .lgc gives its circuit); ``example`` is the built-in circuit."""
    from lgc.api import CHECKPOINT_SUFFIXES, load
    from lgc.backends import read_circuit
    from lgc.ir import example_circuit
    if path == "example":
        return example_circuit()
    if path.lower().endswith(CHECKPOINT_SUFFIXES):
        return load(path)
    # a saved net's circuit, not built for its target; the CLI names no format option, so for an
    # unknown suffix the hint says which suffixes it reads
    return read_circuit(path, option=None)


def samples_per_second(net, bits: np.ndarray, min_seconds: float = 0.3, repeats: int = 3) -> float:
    """Throughput of ``net`` on bool input bits (packing and readout included), via
    ``lgc.backends.bench.measure_throughput``; the batch is repeated to at least 65536 samples."""
    from lgc.backends.bench import measure_throughput
    reps = max(1, int(math.ceil(65536 / max(len(bits), 1))))
    x = np.ascontiguousarray(np.concatenate([bits] * reps)) if reps > 1 else np.ascontiguousarray(bits)
    return measure_throughput(net, x, repeats=repeats, min_seconds=min_seconds)
