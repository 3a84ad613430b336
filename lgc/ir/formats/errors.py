"""The one error type of every reader in :mod:`lgc.ir.formats`: it names the source and line."""
from __future__ import annotations

from ..circuit import CircuitError


class FormatError(CircuitError):
    """A file in a netlist format is malformed; ``line`` is 1-based (None when not line-based)."""

    def __init__(self, message: str, *, source: str = "<text>", line: int | None = None):
        self.source, self.line, self.reason = source, line, message
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")
