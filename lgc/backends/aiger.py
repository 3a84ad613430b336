"""File backend for AIGER: binary ``.aig`` and ASCII ``.aag`` (lgc.ir.formats.aiger)."""
from __future__ import annotations

import os

from ..ir import Circuit
from ..ir.formats import aiger

FORMAT = "aiger"
SUFFIXES = (".aig", ".aag")


def write(circuit: Circuit, path: str | os.PathLike, *, binary: bool | None = None) -> None:
    """``binary`` defaults from the suffix (``.aag`` is ASCII, anything else binary)."""
    aiger.save(circuit, path, binary=binary)


def read(path: str | os.PathLike) -> Circuit:
    return aiger.load(path)
