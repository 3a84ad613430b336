"""The one error type of every reader in :mod:`lgc.ir.formats`: it names the source and line."""
from __future__ import annotations

import os

from ..circuit import CircuitError


class FormatError(CircuitError):
    """A file in a netlist format is malformed; ``line`` is 1-based (None when not line-based)."""

    def __init__(self, message: str, *, source: str = "<text>", line: int | None = None):
        self.source, self.line, self.reason = source, line, message
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


def read_text(path: str | os.PathLike) -> str:
    """A text netlist's contents; bytes that are not UTF-8 are a :class:`FormatError` naming the line."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start})", source=os.fspath(path),
                          line=data.count(b"\n", 0, e.start) + 1) from None
