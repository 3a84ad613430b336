"""An object file (``.o``) of a circuit for any LLVM target triple (x86-64, aarch64, riscv64,
wasm32, thumbv7em, ...): the ``llvm`` target's kernel, optimised at -O3, with the circuit's tables
as constant data, plus ``<name>.h`` stating the ABI; link it into a C program with any linker for
that target. See :mod:`._llvm_export`."""
from __future__ import annotations

import os

from ..ir import Circuit
from ._llvm_export import export

FORMAT = "object"
SUFFIXES = (".o", ".obj")


def write(circuit: Circuit, path: str | os.PathLike, **options) -> None:
    """Options: ``triple`` (default this host's), ``cpu`` (``"native"``: this host's CPU and
    features), ``features`` (e.g. ``"+avx2"``), ``vector_words``, ``fuse`` (3-input gates;
    default only with AVX-512), ``prefix`` (symbol prefix, default the file's stem),
    ``header_path``."""
    export(circuit, path, kind="o", **options)
