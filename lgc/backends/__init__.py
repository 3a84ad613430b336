"""Backends: executable targets (``numpy``, ``c``, ``cpu-avx2``, ``cpu-avx512``, ``llvm``, ``cpu``,
``cuda``) and file formats. ``lgc.compile`` and ``lgc.export`` dispatch here.

An executable backend module exposes ``TARGETS`` (names it serves), ``available(target) -> str | None``
(None when usable, else why not) and ``build(circuit, target, *, threads=None, **options)``.
A file backend module exposes ``FORMAT``, ``SUFFIXES`` and ``write(circuit, path, **options)``
(and ``read(path)`` when the format can be read back).
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

from ..ir import Circuit
from ..ir.formats import FormatError
from ._common import CompiledNet

#: executable backend modules, in the order ``cpu`` prefers them (fastest first).
EXECUTABLE_MODULES = ("numpy_ref", "cpu_c", "llvm", "cuda")
#: file-format backend modules.
FILE_MODULES = ("lgc_file", "text_file", "verilog", "blif", "aiger", "c_source", "llvm_ir_file", "object_file")
#: targets ``cpu`` may resolve to, fastest first: ``llvm`` ran 1.05-1.21x ``cpu-avx2`` on an AVX2
#: host at 1 and 2 threads (benchmarks/RESULTS.md, CPU) and needs no C compiler at run time;
#: ``cpu-avx512`` is first where the CPU has it (``llvm`` was not measured against it: no such host).
CPU_PREFERENCE = ("cpu-avx512", "llvm", "cpu-avx2", "c", "numpy")


def _module(name: str) -> ModuleType:
    return importlib.import_module(f".{name}", __name__)


def _executable_table() -> dict[str, ModuleType]:
    table: dict[str, ModuleType] = {}
    for name in EXECUTABLE_MODULES:
        mod = _module(name)
        for target in mod.TARGETS:
            table[target] = mod
    return table


def unavailable_reasons() -> dict[str, str | None]:
    """Every known executable target -> None when it works here, else the reason it does not."""
    reasons = {}
    for target, mod in _executable_table().items():
        try:
            reasons[target] = mod.available(target)
        except Exception as e:  # a probe that breaks means "not available", with the reason
            reasons[target] = f"{type(e).__name__}: {e}"
    return reasons


def available_targets() -> list[str]:
    """The executable targets that work on this host (``cpu`` first when any CPU target works)."""
    ok = [t for t, why in unavailable_reasons().items() if why is None]
    return (["cpu"] if any(t in ok for t in CPU_PREFERENCE) else []) + ok


def resolve_target(target: str) -> tuple[str, ModuleType]:
    """Map a target name (``cpu`` included) to (concrete target, backend module); clear errors otherwise."""
    table = _executable_table()
    if target == "cpu":
        for candidate in CPU_PREFERENCE:
            if candidate in table and table[candidate].available(candidate) is None:
                return candidate, table[candidate]
        raise ValueError("no CPU target is available here")
    if target not in table:
        known = ", ".join(["cpu", *table])
        files = ", ".join(file_formats())
        raise ValueError(f"unknown target {target!r}; executable targets: {known} (file formats, for lgc.export: {files})")
    why = table[target].available(target)
    if why is not None:
        raise ValueError(f"target {target!r} is not available here: {why}; available: {', '.join(available_targets())}")
    return target, table[target]


def build(circuit: Circuit, target: str = "cpu", *, threads: int | None = None, **options: Any) -> CompiledNet:
    """Build an executable ``CompiledNet`` for ``target``."""
    if threads is not None and (int(threads) != threads or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    concrete, mod = resolve_target(target)
    return mod.build(circuit.validate(), concrete, threads=threads, **options)


def _file_table() -> dict[str, ModuleType]:
    return {mod.FORMAT: mod for mod in map(_module, FILE_MODULES)}


def file_formats(*, reading: bool = False) -> list[str]:
    """Names of the file formats (only those lgc can read back when ``reading``)."""
    return [name for name, mod in _file_table().items() if hasattr(mod, "read") or not reading]


def format_for_path(path: str | os.PathLike, format: str | None = None, *, option: str | None = "format=",
                    reading: bool = False) -> ModuleType:
    """The file backend for ``format``, else for the path's suffix (among the readable formats when
    ``reading``). An unknown suffix is a FormatError whose hint names ``option`` (the caller's way to
    name the format; None: rename the file)."""
    table = {name: mod for name, mod in _file_table().items() if hasattr(mod, "read") or not reading}
    if format is not None:
        if format not in table:
            what = "readable file format" if reading else "file format"
            raise ValueError(f"unknown {what} {format!r}; known: {', '.join(table)}")
        return table[format]
    name = os.fspath(path).lower()
    for mod in _file_table().values():
        if name.endswith(tuple(mod.SUFFIXES)):
            if mod.FORMAT not in table:
                raise FormatError(f"the {mod.FORMAT} format cannot be read back", source=os.fspath(path))
            return mod
    suffixes = ", ".join(s for m in table.values() for s in m.SUFFIXES)
    hint = f"pass {option} ({', '.join(table)})" if option else "give the file one of these suffixes"
    raise FormatError(f"cannot tell the format from the suffix ({suffixes}); {hint}", source=os.fspath(path))


def export(circuit: Circuit, path: str | os.PathLike, *, format: str | None = None, **options: Any) -> None:
    """Write ``circuit`` in a file format (chosen by ``format`` or by the path's suffix)."""
    format_for_path(path, format).write(circuit.validate(), path, **options)


def read_circuit(path: str | os.PathLike, format: str | None = None, *, option: str | None = "format=") -> Circuit:
    """The Circuit in any readable file (a saved net's too, without building it); ``format`` names
    the format, else the suffix does (``option``: how the caller names a format, for the hint when
    the suffix is unknown). File errors are FormatError/CircuitError."""
    return format_for_path(path, format, option=option, reading=True).read(path)


def load(path: str | os.PathLike, format: str | None = None, *, target: str | None = None,
         option: str | None = "format="):
    """Read any supported file: a Circuit, or a CompiledNet for a ``.lgc`` saved from one.

    The circuit is host-independent, the target it was saved for may not be: a saved net is
    rebuilt for its saved target when that works here, else for the best available one (as
    ``cpu`` resolves; any executable target when no CPU target works) with a warning naming
    both. ``target=`` asks for a specific target (``cpu`` included): any file is then built for
    it, and an unavailable one is a ValueError, never a silent substitute. ``format`` and
    ``option`` as in :func:`read_circuit`.
    """
    circuit = read_circuit(path, format, option=option)
    if target is not None:
        return build(circuit, target)
    saved = circuit.meta.get("compiled_target")
    if not saved:
        return circuit
    table = _executable_table()
    try:
        why = table[saved].available(saved) if saved in table else f"lgc knows no target {saved!r}"
    except Exception as e:  # a probe that breaks means "not available", with the reason
        why = f"{type(e).__name__}: {e}"
    if why is None:
        return build(circuit, saved)
    ok = available_targets()
    if not ok:
        raise ValueError(f"{os.fspath(path)}: saved for target {saved!r}, which is not available here ({why}), "
                         f"and no other executable target is")
    best = ok[0]
    net = build(circuit, best)
    import warnings
    warnings.warn(f"{os.fspath(path)}: saved for target {saved!r}, which is not available here ({why}); "
                  f"loaded for {net.target!r} instead (same circuit; pass target= to choose)", RuntimeWarning,
                  stacklevel=3)
    return net


__all__ = ["CompiledNet", "available_targets", "build", "export", "file_formats", "load", "read_circuit",
           "resolve_target", "unavailable_reasons"]
