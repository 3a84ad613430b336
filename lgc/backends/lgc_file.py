"""File backend for lgc's own binary format: ``.lgc`` (npz + JSON header, checksummed)."""
from __future__ import annotations

import os

from ..ir import Circuit
from ..ir import serialize

FORMAT = "lgc"
SUFFIXES = (".lgc",)


def write(circuit: Circuit, path: str | os.PathLike) -> None:
    serialize.save(circuit, path)


def read(path: str | os.PathLike) -> Circuit:
    return serialize.load(path)
