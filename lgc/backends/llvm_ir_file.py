"""Textual LLVM IR (``.ll``) of a circuit: the ``llvm`` target's kernel with the circuit's tables as
constant data, for a target triple (default: this host's, generic CPU), plus ``<name>.h`` stating
the ABI. Compile it with ``clang -O2 -c net.ll`` or ``llc``. See :mod:`._llvm_export`."""
from __future__ import annotations

import os

from ..ir import Circuit
from ._llvm_export import export

FORMAT = "llvm-ir"
SUFFIXES = (".ll",)


def write(circuit: Circuit, path: str | os.PathLike, **options) -> None:
    """Options: ``triple``, ``cpu``, ``features``, ``vector_words``, ``fuse`` (3-input gates;
    default only with AVX-512), ``prefix`` (symbol prefix, default the file's stem),
    ``header_path``."""
    export(circuit, path, kind="ll", **options)
