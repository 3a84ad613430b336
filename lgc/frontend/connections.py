"""Random wiring of a logic layer, as difflogic draws it (``random`` and ``unique``).

Both cost O(out_dim) and use torch's global RNG (or a given ``torch.Generator``), so
``torch.manual_seed`` makes a model reproducible exactly as in difflogic.
"""
from __future__ import annotations

import torch

CONNECTIONS = ("random", "unique")


def random_connections(in_dim: int, out_dim: int, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """difflogic's ``random``: every input is used about equally often (a shuffled round robin)."""
    c = torch.randperm(2 * out_dim, generator=generator) % in_dim
    c = torch.randperm(in_dim, generator=generator)[c]
    c = c.reshape(2, out_dim).to(torch.int64)
    return c[0].contiguous(), c[1].contiguous()


def unique_connections(in_dim: int, out_dim: int, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """difflogic's ``unique``: no two gates read the same pair of inputs, and never a == b.

    Pairs (0,1), (2,3), ... first, then (1,2), (3,4), ..., then pairs (i, i + offset) at growing
    offsets up to in_dim - 1 (so every size up to in_dim * (in_dim - 1) / 2, all the pairs, can be
    drawn; difflogic stops early and refuses e.g. 3 gates on 3 inputs), truncated to ``out_dim``
    and shuffled. One change to difflogic's order, only where its truncation would leave an input
    unread: for odd in_dim and ceil(in_dim / 2) <= out_dim < in_dim - 1 the pair
    (in_dim - 2, in_dim - 1) moves up behind the first batch, so every input is read whenever
    out_dim >= ceil(in_dim / 2). Raises ValueError when out_dim > in_dim * (in_dim - 1) / 2.
    """
    if in_dim < 2:
        raise ValueError(f"'unique' connections need in_dim >= 2, got {in_dim}")
    if out_dim > in_dim * (in_dim - 1) // 2:
        raise ValueError(f"cannot draw {out_dim} unique connections from {in_dim} inputs "
                         f"(there are {in_dim * (in_dim - 1) // 2} distinct pairs)")
    x = torch.arange(in_dim, dtype=torch.int64)
    a, b = x[::2], x[1::2]
    m = min(a.numel(), b.numel())
    a, b = a[:m], b[:m]
    if a.numel() < out_dim:
        a_, b_ = x[1::2], x[2::2]
        m = min(a_.numel(), b_.numel())
        a_, b_ = a_[:m], b_[:m]
        if in_dim % 2 and -(-in_dim // 2) <= out_dim < in_dim - 1:  # (in_dim-2, in_dim-1) reads the last input
            a_, b_ = torch.cat([a_[-1:], a_[:-1]]), torch.cat([b_[-1:], b_[:-1]])
        a, b = torch.cat([a, a_]), torch.cat([b, b_])
    offset = 2
    while a.numel() < out_dim and offset < in_dim:
        a, b = torch.cat([a, x[:-offset]]), torch.cat([b, x[offset:]])
        offset += 1
    a, b = a[:out_dim], b[:out_dim]
    perm = torch.randperm(out_dim, generator=generator)
    return a[perm].contiguous(), b[perm].contiguous()


def make_connections(kind: str, in_dim: int, out_dim: int, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Operand indices ``(a, b)``, each int64 [out_dim], for ``kind`` in ``CONNECTIONS``."""
    # difflogic asserts out_dim * 2 >= in_dim; lgc allows narrower layers (some inputs go unread).
    if in_dim < 1 or out_dim < 1:
        raise ValueError(f"a logic layer needs in_dim >= 1 and out_dim >= 1, got {in_dim}, {out_dim}")
    if kind == "random":
        return random_connections(in_dim, out_dim, generator)
    if kind == "unique":
        return unique_connections(in_dim, out_dim, generator)
    raise ValueError(f"connections must be one of {CONNECTIONS}, got {kind!r}")
