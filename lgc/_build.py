"""Building native code once and caching it by content hash (shared by the C, LLVM and CUDA paths).

A build is keyed by the SHA-256 of its sources, flags and compiler version, so an unchanged
circuit or kernel is never rebuilt. The cache heals itself:

- every file is written to a temporary name, fsynced and renamed into place, and the temporary
  is removed when anything fails (a full disk leaves nothing behind);
- beside each library lies ``<lib>.sha256``, the SHA-256 of its bytes recorded at build time;
  a library whose bytes do not match (truncated, damaged) is rebuilt instead of loaded (a
  truncated ``.so`` would crash the process with SIGBUS); one from before this rule is adopted
  when it is a complete ELF file (it reaches the end of its section headers), else rebuilt;
- when the cache directory cannot be written (read-only, not a directory, disk full), builds
  go to a private temporary cache for this process, with one warning.
Checking a hit costs one read and hash of the library (~1 ms per 100 KB). Imports nothing from
the rest of lgc.
"""
from __future__ import annotations

import atexit
import functools
import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile
import warnings
from typing import Any, Callable, Iterable, Sequence, TypeVar

from ._atomic import write_atomic

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


def configured_cache_dir() -> pathlib.Path:
    """``$LGC_CACHE_DIR``, else ``$XDG_CACHE_HOME/lgc``, else ``~/.cache/lgc`` (maybe not writable)."""
    root = os.environ.get("LGC_CACHE_DIR")
    if root:
        return pathlib.Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (pathlib.Path(xdg) if xdg else pathlib.Path.home() / ".cache") / "lgc"


@functools.lru_cache(maxsize=None)
def _writable(path: pathlib.Path) -> str | None:
    """None when files can be created in ``path`` (made if missing), else why not. A real probe:
    permission bits say nothing for root or a read-only mount."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    return None


@functools.lru_cache(maxsize=None)
def _private_cache(unusable: pathlib.Path, why: str) -> pathlib.Path:
    path = pathlib.Path(tempfile.mkdtemp(prefix="lgc-cache-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    warnings.warn(f"lgc build cache {unusable} is not writable ({why}); building into the private temporary "
                  f"cache {path} for this process (set LGC_CACHE_DIR to a writable directory to keep builds)",
                  RuntimeWarning, stacklevel=3)
    return path


def cache_dir() -> pathlib.Path:
    """The build cache: :func:`configured_cache_dir` when writable, else (with a warning, once) a private
    temporary directory removed at exit."""
    path = configured_cache_dir()
    why = _writable(path)
    return path if why is None else _private_cache(path, why)


def _digest_path(lib: pathlib.Path) -> pathlib.Path:
    return lib.with_name(lib.name + ".sha256")


def _elf_complete(data: bytes) -> bool:
    """True when ``data`` is a 64-bit little-endian ELF file that reaches the end of its section
    header table (which linkers put last): a truncated library fails this."""
    if len(data) < 64 or data[:6] != b"\x7fELF\x02\x01":
        return False
    shoff = int.from_bytes(data[0x28:0x30], "little")
    shentsize = int.from_bytes(data[0x3A:0x3C], "little")
    shnum = int.from_bytes(data[0x3C:0x3E], "little")
    return len(data) >= shoff + shentsize * shnum


def verified(lib: pathlib.Path) -> bool:
    """True when ``lib`` exists and its bytes match the SHA-256 recorded when it was built. A library
    from before digests were recorded is adopted (its digest recorded) when it is a complete ELF file."""
    try:
        data = lib.read_bytes()
        digest = _digest_path(lib)
        if not digest.exists() and _elf_complete(data):
            write_atomic(digest, hashlib.sha256(data).hexdigest().encode())
        return hashlib.sha256(data).hexdigest() == digest.read_text().strip()
    except OSError:
        return False


def record(lib: pathlib.Path) -> None:
    """Record the SHA-256 of a freshly built ``lib`` (for :func:`verified`)."""
    write_atomic(_digest_path(lib), hashlib.sha256(lib.read_bytes()).hexdigest().encode())


def _warn_if_damaged(lib: pathlib.Path) -> None:
    """Warn when ``lib`` has a recorded digest it does not match (a library without one, from an older
    lgc or a build interrupted between the two renames, is rebuilt silently)."""
    if lib.exists() and _digest_path(lib).exists():
        warnings.warn(f"cached library {lib} does not match the SHA-256 recorded when it was built (truncated or "
                      f"damaged); rebuilding it", RuntimeWarning, stacklevel=3)


def discard_if_damaged(lib: pathlib.Path) -> bool:
    """Remove ``lib`` (and its digest) when it exists but fails :func:`verified`; True when removed.
    For libraries another tool builds in place (torch's cpp_extension): it then rebuilds them."""
    if not lib.exists() or verified(lib):
        return False
    _warn_if_damaged(lib)
    for p in (lib, _digest_path(lib)):
        try:
            p.unlink()
        except FileNotFoundError:
            pass
    return True


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
    name = f"{kind}-{key}.so"
    lib = cache_dir() / kind / name
    if verified(lib):
        return lib
    _warn_if_damaged(lib)
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
        data = tmp_lib.read_bytes()
    return _install(lib, data)


def _install(lib: pathlib.Path, data: bytes) -> pathlib.Path:
    """Put a built library and its digest into the cache; a cache that cannot take them (read-only,
    full) gives way to the private temporary cache, with a warning."""
    try:
        lib.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(lib, data)
        write_atomic(_digest_path(lib), hashlib.sha256(data).hexdigest().encode())
        return lib
    except OSError as e:
        private = _private_cache(lib.parent.parent, f"{type(e).__name__}: {e}")
        if lib.parent.parent == private:
            raise BuildError(f"cannot write the built library {lib}: {e}") from None
        fallback = private / lib.parent.name / lib.name
        fallback.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(fallback, data)
        write_atomic(_digest_path(fallback), hashlib.sha256(data).hexdigest().encode())
        return fallback


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
