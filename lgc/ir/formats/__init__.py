"""Netlist file formats: readers and writers shared by the file backends and external passes.

Each format module offers ``dumps``/``loads`` (text or bytes) and ``save``/``load`` (paths);
every reader raises :class:`FormatError` naming the line of the first problem.
"""
from .errors import FormatError

__all__ = ["FormatError"]
