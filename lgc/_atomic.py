"""Atomic file writes, for every file lgc writes that a reader may trust: a partial write (a kill, a
full disk) never replaces a good file and never leaves its temporary behind.

``staged_path(path)`` yields a temporary name beside ``path`` for any writer (``torch.save``, numpy,
a subprocess); when the block succeeds the file is fsynced and renamed onto ``path``, when it fails
the temporary is removed. ``write_atomic(path, data)`` does that for bytes. Imports nothing from
the rest of lgc.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator


@contextlib.contextmanager
def staged_path(path: str | os.PathLike) -> Iterator[str]:
    """A temporary path in ``path``'s folder; renamed onto ``path`` (after an fsync) when the block
    succeeds, removed when it raises. Raises what the write or the rename raises."""
    target = os.fspath(path)
    fd, staged = tempfile.mkstemp(dir=os.path.dirname(target) or ".", prefix=f".{os.path.basename(target)}.")
    os.close(fd)
    try:
        yield staged
        with open(staged, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(staged, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(staged)
        raise


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`staged_path`."""
    with staged_path(path) as staged, open(staged, "wb") as f:
        f.write(data)
