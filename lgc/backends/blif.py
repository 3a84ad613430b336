"""File backend for BLIF (``.blif``): lgc's writer and the general reader of lgc.ir.formats.blif."""
from __future__ import annotations

import os

from ..ir import Circuit
from ..ir.formats import blif

FORMAT = "blif"
SUFFIXES = (".blif",)


def write(circuit: Circuit, path: str | os.PathLike, *, model: str = "lgc") -> None:
    blif.save(circuit, path, model=model)


def read(path: str | os.PathLike) -> Circuit:
    return blif.load(path)
