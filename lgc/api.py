"""The front door: ``lower``, ``optimize``, ``compile``, ``export``, ``load``, ``targets``.

Each function imports the part it needs on first use, so ``import lgc`` stays cheap and works
without PyTorch; only ``lower`` (and ``compile``/``export``/``load`` given a model or a ``.pt``
checkpoint) touches the frontend. Every function that optimises takes ``opt_level`` (0-3) with
the one default :data:`DEFAULT_OPT_LEVEL`, as the CLI's ``-O`` does.
"""
from __future__ import annotations

import os
from typing import Any

from .ir import Circuit

#: the optimisation level of ``compile``, ``export``, ``optimize`` and the CLI's ``-O`` when none is given
DEFAULT_OPT_LEVEL = 2
#: suffixes of training checkpoints (``lgc train``'s ``best.pt``); they are lowered on load
CHECKPOINT_SUFFIXES = (".pt", ".pth")


def _as_circuit(model_or_circuit: Any, input_shape: Any = None) -> Circuit:
    if input_shape is not None and isinstance(model_or_circuit, (Circuit, str, os.PathLike)):
        raise ValueError("input_shape applies to PyTorch models only (a circuit or file already fixes its inputs)")
    if isinstance(model_or_circuit, Circuit):
        return model_or_circuit
    if isinstance(model_or_circuit, (str, os.PathLike)):
        if os.fspath(model_or_circuit).lower().endswith(CHECKPOINT_SUFFIXES):
            return load(model_or_circuit)  # the checkpoint's model, lowered
        from .backends import read_circuit
        return read_circuit(model_or_circuit)  # a saved net's circuit, not built for its target
    return lower(model_or_circuit, input_shape=input_shape)


def lower(model: Any, input_shape: Any = None) -> Circuit:
    """Lower a trained PyTorch model into a :class:`lgc.ir.Circuit` that computes exactly what the
    model computes in eval mode (Petersen et al., "Deep Differentiable Logic Gate Networks",
    NeurIPS 2022: each gate is its argmax gate).

    ``model``: an ``nn.Sequential`` of ``[Binarize] [Flatten/Unflatten] LogicConv2d/OrPool2d*
    LogicLayer* [GroupSum]`` (see :func:`lgc.frontend.lower`). ``input_shape``: one sample's shape
    without the batch axis, e.g. ``(1, 12, 12)``, or an example batch ``[N, ...]`` (tensor or
    array); needed only when no module fixes it (a model starting with ``LogicConv2d`` without
    ``input_size``). The circuit's inputs are the model's input bits (after a ``Binarize``, whose
    thresholds become the circuit's input encoder); with a ``GroupSum``, scores are int32 counts
    (the model's outputs times ``tau``). Raises ``ValueError`` naming the module that cannot be
    lowered, ``TypeError`` when ``model`` is not a torch module; needs torch (``lgc[train]``)."""
    from .frontend import lower as _lower
    return _lower(model, input_shape=input_shape)


def optimize(circuit: Any, opt_level: int = DEFAULT_OPT_LEVEL, *, report: bool = False, level: int | None = None,
             area_only: bool = False):
    """Run level ``opt_level``'s pass pipeline (0 none; 1 dead gates, constants, pass-throughs; 2 adds
    NOT absorption, a == b simplification, output polarity, structural hashing modulo complement and,
    on circuits up to 100,000 gates, shared-pair extraction, exact 4-cut rewriting and refactoring;
    3 runs those rewrites at every size and adds restructuring (the rewrites again on the AND/inverter
    form), SAT-proved fraiging and don't-care resubstitution)
    to a fixed point.

    ``circuit``: a Circuit, a model (lowered first) or a file :func:`load` reads. ``level`` is an
    older name for ``opt_level``. By default no pass deepens the circuit; ``area_only=True`` lets
    O3 trade depth for gates. Returns the new Circuit (the input is untouched), or
    ``(circuit, PassReport)`` with ``report=True`` (gates before/after and seconds per pass).
    Raises ``ValueError`` for a level outside 0-3."""
    from .passes import optimize as _optimize
    return _optimize(_as_circuit(circuit), level=opt_level if level is None else level, report=report,
                     area_only=area_only)


def compile(model_or_circuit: Any, target: str = "cpu", *, opt_level: int = DEFAULT_OPT_LEVEL,
            input_shape: Any = None, threads: int | None = None, **options: Any):
    """Lower (given a model or a ``.pt`` checkpoint), optimise at ``opt_level`` and build an executable.

    ``model_or_circuit``: a Circuit, a PyTorch model (``input_shape`` as in :func:`lower`), or a
    path :func:`load` reads (``best.pt``, ``.lgc``, netlists). ``target``: one of
    :func:`targets` (``cpu`` = the fastest CPU backend here). Returns a ``CompiledNet``:
    ``net(x) -> int32 [N, k]`` class scores (group popcounts; the PyTorch model's output is
    ``scores / tau``) or ``uint8 [N, O]`` bits without a head, ``net.predict(x) -> int64 [N]``;
    ``x`` is bool/0-1 ``[N, num_inputs]``, ``lgc.ir.PackedBits``, or raw features ``[N, F]`` when
    the circuit has an input encoder. Raises ``ValueError`` for an unknown or unavailable target."""
    from .backends import build
    circuit = _as_circuit(model_or_circuit, input_shape)
    if opt_level:
        circuit = optimize(circuit, opt_level)
    return build(circuit, target, threads=threads, **options)


def export(model_or_circuit: Any, path: str | os.PathLike, format: str | None = None, *,
           opt_level: int = DEFAULT_OPT_LEVEL, input_shape: Any = None, **options: Any) -> None:
    """Optimise at ``opt_level`` and write a hardware or netlist file (``verilog``, ``blif``, ``aiger``,
    ``lgc``, ``text``, ...), or the network as code that leaves Python: standalone C99 (``.c``:
    ``net.c`` + ``net.h``, see :mod:`lgc.backends.c_source`), LLVM IR (``.ll``) or an object file
    (``.o``; options ``triple``, ``cpu``, ``features``, ``vector_words``) with a C header beside it;
    ``format`` defaults from the file's suffix (``.v``, ``.blif``, ``.aag``/``.aig``, ``.lgc``,
    ``.txt``, ``.c``, ``.ll``, ``.o``). ``model_or_circuit`` as in :func:`compile`; ``opt_level=0``
    writes the lowered circuit gate for gate. Raises ``ValueError`` for an unknown format or suffix."""
    from .backends import export as _export
    circuit = _as_circuit(model_or_circuit, input_shape)
    if opt_level:
        circuit = optimize(circuit, opt_level)
    _export(circuit, path, format=format, **options)


def load(path: str | os.PathLike, format: str | None = None, *, target: str | None = None):
    """Read a file as a Circuit or a ready-to-run ``CompiledNet``.

    - ``.lgc``: a ``CompiledNet`` when it was saved from one (its header names a target), else a
      Circuit. A saved net is rebuilt for its saved target, or, where that is not available on this
      host, for the best one that is (with a RuntimeWarning).
    - ``.pt``/``.pth``: a training checkpoint (``lgc train``'s ``best.pt``, read with
      ``weights_only=True``), lowered to its Circuit (eval semantics, input encoder from its
      Binarize); needs torch (``lgc[train]``); ``ValueError`` when it is not an lgc checkpoint.
    - text, BLIF and AIGER netlists load as Circuits.
    ``format`` (``lgc``, ``text``, ``blif``, ``aiger``) names the format, else the suffix does.
    ``target=`` builds whatever the file holds for that target instead (ValueError when it is not
    available here). A damaged or unreadable file raises :class:`lgc.ir.formats.FormatError` or
    :class:`lgc.ir.CircuitError`; a missing one ``FileNotFoundError``."""
    if format is None and os.fspath(path).lower().endswith(CHECKPOINT_SUFFIXES):
        from ._optional import require
        require("torch", extra="train", purpose=f"reading the checkpoint {os.fspath(path)}")
        from .frontend import load_checkpoint
        circuit = lower(load_checkpoint(path))
        if target is None:
            return circuit
        from .backends import build
        return build(circuit, target)
    from .backends import load as _load
    return _load(path, format, target=target)


def targets() -> list[str]:
    """The executable targets that work on this host, fastest-first for ``cpu``."""
    from .backends import available_targets
    return available_targets()
