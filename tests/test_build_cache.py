"""The native build cache heals: damaged libraries are rebuilt, failed writes leave nothing, an
unwritable cache falls back to a private one (lgc._build)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from lgc import _build
from lgc.backends import cpu_c

from conftest import REPO, need

# compiles the `c` target in a fresh process and checks it against the oracle; prints the library path
_CHILD = textwrap.dedent("""
    import numpy as np, lgc
    from lgc.ir import random_layered_circuit, simulate
    from lgc.backends import cpu_c
    c = random_layered_circuit(24, [40, 30], num_classes=3, seed=7)
    x = np.random.default_rng(1).integers(0, 2, (300, 24)).astype(bool)
    assert np.array_equal(lgc.compile(c, target="c", opt_level=0)(x), simulate(c, x))
    for t in ("numpy",) + (("llvm",) if "llvm" in lgc.targets() else ()):
        assert np.array_equal(lgc.compile(c, target=t, opt_level=0)(x), simulate(c, x))
    print("OK")
""")


def _child(cache: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LGC_CACHE_DIR": cache, "PYTHONPATH": str(REPO), **(extra_env or {})}
    return subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=300)


def _need_cc() -> None:
    need("c-compiler", None if cpu_c.compiler() else "no C compiler")


def test_truncated_library_is_rebuilt_in_a_fresh_process(tmp_path):
    _need_cc()
    cache = tmp_path / "cache"
    (cache / "cpu-c").mkdir(parents=True)
    for lib in (_build.configured_cache_dir() / "cpu-c").glob("*.so"):  # reuse a good build: saves a compile
        if _build.verified(lib):
            for p in (lib, lib.with_name(lib.name + ".sha256")):
                (cache / "cpu-c" / p.name).write_bytes(p.read_bytes())
    first = _child(str(cache))
    assert first.returncode == 0, first.stderr
    originals = {lib: lib.read_bytes() for lib in (cache / "cpu-c").glob("*.so")}
    assert originals and all(_build.verified(lib) for lib in originals)
    for lib, data in originals.items():  # what a kill or a full disk mid-copy leaves
        lib.write_bytes(data[: len(data) // 3])
    second = _child(str(cache))  # before the fix: SIGBUS in this and every later process
    assert second.returncode == 0, second.stderr
    assert "OK" in second.stdout and "rebuilding" in second.stderr
    healed = [lib for lib, data in originals.items() if lib.read_bytes() == data and _build.verified(lib)]
    assert len(healed) == 1  # the library the child needed, rebuilt byte for byte


def test_unwritable_cache_warns_and_works(tmp_path):
    _need_cc()
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would go")
    cases = [str(blocker / "cache")]  # mkdir fails (NotADirectoryError), as root too
    if os.geteuid() != 0:  # permission bits bind only non-root users
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        cases.append(str(ro / "cache"))
    for cache in cases:
        proc = _child(cache)
        assert proc.returncode == 0, proc.stderr
        assert "OK" in proc.stdout and "not writable" in proc.stderr and "private temporary cache" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_failed_write_leaves_no_staged_file(tmp_path, monkeypatch):
    def disk_full(fd):
        raise OSError(28, "No space left on device")

    target = tmp_path / "lib.so"
    monkeypatch.setattr(_build.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        _build.write_atomic(target, b"\x7fELF" + bytes(1000))
    assert list(tmp_path.iterdir()) == []


def test_build_falls_back_when_the_cache_write_fails(tmp_path, monkeypatch):
    _need_cc()
    cache = tmp_path / "cache"
    monkeypatch.setenv("LGC_CACHE_DIR", str(cache))
    real_fsync = os.fsync

    def fsync(fd):  # the cache's disk is full; the private cache (under the system temp dir) is not
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(cache)):
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(_build.os, "fsync", fsync)
    src = {"k.c": "int lgc_answer(void) { return 42; }\n"}
    with pytest.warns(RuntimeWarning, match="not writable"):
        lib = _build.build_shared_library(src, cpu_c.compiler(), ["-shared", "-fPIC"], kind="probe")
    assert not str(lib).startswith(str(cache)) and _build.verified(lib)
    leftovers = [p for p in cache.rglob("*") if p.is_file()]
    assert leftovers == []  # no staged or partial file in the full cache
    import ctypes
    assert ctypes.CDLL(str(lib)).lgc_answer() == 42


def test_libraries_from_before_digests_are_adopted_only_when_complete(tmp_path, monkeypatch):
    _need_cc()
    monkeypatch.setenv("LGC_CACHE_DIR", str(tmp_path / "cache"))
    src = {"k.c": "int lgc_answer(void) { return 42; }\n"}
    lib = _build.build_shared_library(src, cpu_c.compiler(), ["-shared", "-fPIC"], kind="probe")
    data = lib.read_bytes()
    legacy = tmp_path / "legacy.so"
    legacy.write_bytes(data)  # no .sha256 beside it: an older lgc built it
    assert _build.verified(legacy) and (tmp_path / "legacy.so.sha256").exists()
    torn = tmp_path / "torn.so"
    torn.write_bytes(data[:-1])  # even one byte short of its section headers
    assert not _build.verified(torn) and not (tmp_path / "torn.so.sha256").exists()
    assert _build.discard_if_damaged(torn) and not torn.exists()
