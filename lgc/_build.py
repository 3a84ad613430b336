"""Building native code once and caching it by content hash (shared by the C, LLVM and CUDA paths).

A build is keyed by the SHA-256 of its sources, flags and compiler version, so an unchanged
circuit or kernel is never rebuilt and two processes never see a half-written library: output
goes to a temporary name and is renamed into place. Imports nothing from the rest of lgc.
"""
from __future__ import annotations

import functools
import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile
from typing import Any, Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")


class BuildError(RuntimeError):
    """A native build failed or its compiler is missing; the message says which and why."""


def memoize_build(fn: Callable[..., T]) -> Callable[..., T]:
    """``functools.lru_cache`` for a function that builds and loads native code, which also
    remembers a BuildError: a failed build raises the same error again at once instead of
    re-running the compiler on every call (every forward pass, say). ``cache_clear()`` forgets."""
    @functools.lru_cache(maxsize=None)
    def attempt(*args: Any) -> tuple[Any, BuildError | None]:
        try:
            return fn(*args), None
        except BuildError as e:
            return None, e

    @functools.wraps(fn)
    def wrapper(*args: Any) -> T:
        value, error = attempt(*args)
        if error is not None:
            raise error
        return value

    wrapper.cache_clear = attempt.cache_clear  # type: ignore[attr-defined]
    return wrapper


def cache_dir() -> pathlib.Path:
    """``$LGC_CACHE_DIR``, else ``$XDG_CACHE_HOME/lgc``, else ``~/.cache/lgc``."""
    root = os.environ.get("LGC_CACHE_DIR")
    if root:
        path = pathlib.Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        path = (pathlib.Path(xdg) if xdg else pathlib.Path.home() / ".cache") / "lgc"
    path.mkdir(parents=True, exist_ok=True)
    return path


def content_key(*parts: str | bytes | Iterable[str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            part = part.encode()
        elif not isinstance(part, bytes):
            part = "\0".join(part).encode()
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()[:32]


def find_tool(name: str, env_var: str | None = None) -> str | None:
    """Path of a compiler (``$env_var`` wins), or None."""
    if env_var and os.environ.get(env_var):
        return shutil.which(os.environ[env_var])
    return shutil.which(name)


@functools.lru_cache(maxsize=None)
def tool_version(path: str) -> str:
    try:
        return subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def build_shared_library(sources: dict[str, str], compiler: str, flags: Sequence[str], *, kind: str = "lib",
                         link_flags: Sequence[str] = ()) -> pathlib.Path:
    """Compile ``sources`` ({file name: text}) into one shared library, cached by content.

    ``compiler`` is a path (gcc, g++ or nvcc). Returns the library's path. Raises BuildError
    with the compiler's output when the build fails.
    """
    key = content_key(compiler, tool_version(compiler), list(flags), list(link_flags),
                      *[name + "\0" + text for name, text in sorted(sources.items())])
    out_dir = cache_dir() / kind
    out_dir.mkdir(parents=True, exist_ok=True)
    lib = out_dir / f"{kind}-{key}.so"
    if lib.exists():
        return lib
    with tempfile.TemporaryDirectory(prefix=f"lgc-{kind}-") as tmp:
        src_paths = []
        for name, text in sources.items():
            p = pathlib.Path(tmp) / name
            p.write_text(text)
            if not name.endswith((".h", ".cuh", ".hpp")):
                src_paths.append(str(p))
        tmp_lib = pathlib.Path(tmp) / "out.so"
        cmd = [compiler, *flags, *src_paths, "-o", str(tmp_lib), *link_flags]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        except OSError as e:
            raise BuildError(f"cannot run {compiler}: {e}") from None
        if proc.returncode != 0:
            raise BuildError(f"{os.path.basename(compiler)} failed ({' '.join(cmd[:8])} ...):\n"
                             f"{(proc.stderr or proc.stdout)[-4000:]}")
        staged = out_dir / f".{lib.name}.{os.getpid()}"
        shutil.copyfile(tmp_lib, staged)
        os.replace(staged, lib)
    return lib


def nvcc_path() -> str | None:
    """``$LGC_NVCC`` when set (None when it does not exist), else nvcc on PATH, else
    /usr/local/cuda/bin/nvcc, else None."""
    if os.environ.get("LGC_NVCC"):
        return find_tool("nvcc", "LGC_NVCC")
    return shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)


def cuda_source(name: str) -> str:
    """A CUDA source shipped as package data ``lgc._cuda`` (else the repository's ``cuda/``)."""
    try:
        from importlib.resources import files
        return (files("lgc._cuda") / name).read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        return (pathlib.Path(__file__).resolve().parent.parent / "cuda" / name).read_text()


#: headers every CUDA source may include (shipped beside them)
CUDA_HEADERS = ("device_guard.cuh",)


def cuda_sources(name: str) -> dict[str, str]:
    """{file name: text} of the CUDA source ``name`` and the headers it may include, for a build."""
    return {name: cuda_source(name), **{h: cuda_source(h) for h in CUDA_HEADERS}}
