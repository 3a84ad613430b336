"""The front door: ``lower``, ``optimize``, ``compile``, ``export``, ``load``, ``targets``.

Each function imports the part it needs on first use, so ``import lgc`` stays cheap and works
without PyTorch; only ``lower`` (and ``compile`` given a model) touches the frontend.
"""
from __future__ import annotations

import os
from typing import Any

from .ir import Circuit


def _as_circuit(model_or_circuit: Any) -> Circuit:
    if isinstance(model_or_circuit, Circuit):
        return model_or_circuit
    if isinstance(model_or_circuit, (str, os.PathLike)):
        loaded = load(model_or_circuit)
        return loaded if isinstance(loaded, Circuit) else loaded.circuit
    return lower(model_or_circuit)


def lower(model: Any) -> Circuit:
    """Lower a trained PyTorch model (LogicLayer/GroupSum ``nn.Sequential``) into a Circuit.

    The circuit computes exactly what the model computes in eval mode."""
    from .frontend import lower as _lower
    return _lower(model)


def optimize(circuit: Any, level: int = 2, *, report: bool = False, area_only: bool = False):
    """Run the level's pass pipeline to a fixed point. With ``report=True`` return
    ``(circuit, PassReport)``; ``area_only`` lets O3 trade depth for gates."""
    from .passes import optimize as _optimize
    return _optimize(_as_circuit(circuit), level=level, report=report, area_only=area_only)


def compile(model_or_circuit: Any, target: str = "cpu", *, opt_level: int = 2, threads: int | None = None,
            **options: Any):
    """Lower (if given a model), optimise at ``opt_level`` and build an executable for ``target``.

    Returns a ``CompiledNet``: ``net(x)`` gives int32 class scores (or output bits)."""
    from .backends import build
    circuit = _as_circuit(model_or_circuit)
    if opt_level:
        circuit = optimize(circuit, level=opt_level)
    return build(circuit, target, threads=threads, **options)


def export(model_or_circuit: Any, path: str | os.PathLike, format: str | None = None, *, opt_level: int = 0,
           **options: Any) -> None:
    """Write a circuit to a hardware or netlist file (``verilog``, ``blif``, ``aiger``, ``lgc``,
    ``text``); the format defaults from the file's suffix."""
    from .backends import export as _export
    circuit = _as_circuit(model_or_circuit)
    if opt_level:
        circuit = optimize(circuit, level=opt_level)
    _export(circuit, path, format=format, **options)


def load(path: str | os.PathLike):
    """Read a ``.lgc`` file: a ``CompiledNet`` when it was saved from one (its header names a
    target), else a ``Circuit``. Text, BLIF and AIGER files load by suffix as Circuits."""
    from .backends import load as _load
    return _load(path)


def targets() -> list[str]:
    """The executable targets that work on this host, fastest-first for ``cpu``."""
    from .backends import available_targets
    return available_targets()
