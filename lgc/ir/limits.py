"""How much a file may claim beyond what it holds: the one rule every loader applies.

A count a file states but does not back with content (``inputs 200000000`` in a 40-byte text
circuit, a binary AIGER's I, a ``.lgc`` header's ``num_inputs``) costs memory in every later
step (simulation, stats, packing). Loaders accept such a count up to ``max(FLOOR, PER_BYTE *
file bytes)`` and refuse a larger one naming the field, before allocating anything for it; counts
backed by content (gates, outputs, AND lines) are checked against the bytes left to hold them.
Node ids are int32, so no count may reach 2**31 either.
"""
from __future__ import annotations

from typing import Callable

from .circuit import CircuitError

#: a small file may still claim this many inputs (a 784-input net pruned to a few gates is fine)
FLOOR = 1 << 20
#: beyond the floor, unbacked items allowed per byte of the file
PER_BYTE = 8
#: node ids are int32
MAX_NODES = (1 << 31) - 1


def unbacked_limit(file_bytes: int) -> int:
    """The largest count a file of ``file_bytes`` bytes may claim without holding its items."""
    return min(MAX_NODES, max(FLOOR, PER_BYTE * int(file_bytes)))


def check_claim(field: str, value: int, file_bytes: int, fail: Callable[[str], Exception] = CircuitError) -> int:
    """``value`` when a ``file_bytes``-byte file may claim it for ``field``; else raise ``fail(message)``."""
    limit = unbacked_limit(file_bytes)
    if value < 0 or value > limit:
        raise fail(f"{field} = {value} is implausible for a {file_bytes}-byte file (at most {limit}); "
                   f"the file is damaged or crafted")
    return value


def check_backed(field: str, count: int, bytes_left: int, bytes_each: int,
                 fail: Callable[[str], Exception] = CircuitError) -> int:
    """``count`` when ``bytes_left`` bytes can hold ``count`` items of at least ``bytes_each`` bytes."""
    if count < 0 or count > MAX_NODES or count * bytes_each > bytes_left + 1:
        raise fail(f"{field} = {count} needs at least {count * bytes_each} bytes but only {bytes_left} remain; "
                   f"the file is truncated, damaged or crafted")
    return count
