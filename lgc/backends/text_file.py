"""File backend for lgc's text form (one gate a line): ``.txt`` / ``.lgct``."""
from __future__ import annotations

import os

from ..ir import Circuit
from ..ir.formats import text

FORMAT = "text"
SUFFIXES = (".lgct", ".txt")


def write(circuit: Circuit, path: str | os.PathLike) -> None:
    text.save(circuit, path)


def read(path: str | os.PathLike) -> Circuit:
    return text.load(path)
