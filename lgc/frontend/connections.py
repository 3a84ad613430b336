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
    """difflogic's ``unique``: no two gates read the same (ordered) pair of inputs.

    Pairs (0,1), (2,3), ... first, then (1,2), (3,4), ..., then pairs at growing offsets,
    truncated to ``out_dim`` and shuffled.
    """
    if in_dim < 2:
        raise ValueError(f"'unique' connections need in_dim >= 2, got {in_dim}")
    x = torch.arange(in_dim, dtype=torch.int64)
    a, b = x[::2], x[1::2]
    m = min(a.numel(), b.numel())
    a, b = a[:m], b[:m]
    if a.numel() < out_dim:
        a_, b_ = x[1::2], x[2::2]
        m = min(a_.numel(), b_.numel())
        a, b = torch.cat([a, a_[:m]]), torch.cat([b, b_[:m]])
    offset = 2
    while out_dim > a.numel() > offset:
        a, b = torch.cat([a, x[:-offset]]), torch.cat([b, x[offset:]])
        offset += 1
    if a.numel() < out_dim:
        raise ValueError(f"cannot draw {out_dim} unique connections from {in_dim} inputs "
                         f"(at most {a.numel()} distinct pairs this way)")
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
