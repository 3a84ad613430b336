"""The ``c``, ``cpu-avx2`` and ``cpu-avx512`` targets: one table-driven C kernel, built once per target.

The kernel (``cpu_kernel.c``) takes the circuit as data (see :mod:`._schedule`), so a circuit of any
size costs no compile time: the shared library is built once per target and compiler (cached by
content hash in ``lgc._build.cache_dir()``) and loaded with cffi in ABI mode, which releases the
GIL during calls so ``threads=`` splits a batch across cores. Packing of bool rows and the
group-sum popcount run in C. ``c`` is portable (64 samples per word), ``cpu-avx2`` uses 256-bit
vectors, ``cpu-avx512`` 512-bit ones (needs AVX-512 F/BW/VL/DQ; with GFNI and AVX-512 VBMI it
packs rows through 64-bit masks and GF(2) bit transposes, one sequential stream per tile).
"""
from __future__ import annotations

import functools
import os
import pathlib

import numpy as np

from .._build import BuildError, build_shared_library, find_tool
from ..ir import Circuit
from ._common import FastNet, cpu_flags
from ._schedule import readout_schedule, schedule

TARGETS = ("c", "cpu-avx2", "cpu-avx512")
SOURCE = pathlib.Path(__file__).with_name("cpu_kernel.c")
#: words per vector, extra compiler flags, CPU flags needed (from /proc/cpuinfo)
_CONFIG = {
    "c": (1, [], ()),
    "cpu-avx2": (4, ["-mavx2"], ("avx2",)),
    "cpu-avx512": (8, ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mprefer-vector-width=512"],
                   ("avx512f", "avx512bw", "avx512vl", "avx512dq")),
}
_CDEF = """
int lgc_tile_samples(void);
int lgc_has_ternary(void);
int lgc_run(int64_t n_in, int64_t n_slots, int64_t ngroups, const int32_t *groups, const int32_t *gates,
            const int32_t *tgates, int64_t n_out, const int32_t *out_slots, int64_t k,
            int64_t nterms, const int32_t *terms, const int32_t *term_slots, int64_t nterm_groups,
            const int32_t *term_groups, const int32_t *term_gates, const int32_t *consts, const uint8_t *x, const uint64_t *packed, int64_t wstride, int64_t n,
            int32_t *scores, uint8_t *bits, void *workspace);
"""


def compiler() -> str | None:
    """The C compiler: ``$LGC_CC`` when set (even when it does not exist), else gcc, else cc."""
    if os.environ.get("LGC_CC"):
        return find_tool("gcc", "LGC_CC")
    return find_tool("gcc") or find_tool("cc")


def available(target: str) -> str | None:
    if target not in _CONFIG:
        return f"unknown target {target!r}"
    if compiler() is None:
        return f"no C compiler (LGC_CC={os.environ['LGC_CC']!r} not found)" if os.environ.get("LGC_CC") \
            else "no C compiler (gcc or cc) on PATH; set LGC_CC"
    try:
        import cffi  # noqa: F401
    except ImportError:
        return "cffi is not installed"
    missing = [f for f in _CONFIG[target][2] if f not in cpu_flags()]
    if missing:
        return f"this CPU lacks {', '.join(missing)}"
    return None


#: optional extras per target: (CPU flags that must all be present, compiler flags they enable)
_EXTRAS = {
    # input packing by 64-bit row masks + GF(2) 8x8 bit transposes (kernel's MASK_PACK path)
    "cpu-avx512": ((("gfni", "avx512vbmi"), ["-mgfni", "-mavx512vbmi"]),),
}


def build_flags(target: str) -> list[str]:
    """Compiler flags for ``target`` on this host: the base ones plus every extra whose CPU
    flags /proc/cpuinfo lists (so the kernel never uses an instruction the host lacks)."""
    vw, flags, _ = _CONFIG[target]
    extra = [f for needs, fl in _EXTRAS.get(target, ()) if all(n in cpu_flags() for n in needs) for f in fl]
    return [f"-DVW={vw}", *flags, *extra]


@functools.lru_cache(maxsize=None)
def _load(target: str, cc: str):
    import cffi
    lib_path = build_shared_library({"cpu_kernel.c": SOURCE.read_text()}, cc,
                                    ["-O3", "-std=gnu11", "-shared", "-fPIC", "-Werror=implicit-function-declaration", *build_flags(target)],
                                    kind=f"cpu-{target}")
    ffi = cffi.FFI()
    ffi.cdef(_CDEF)
    lib = ffi.dlopen(str(lib_path))
    return ffi, lib


def library(target: str):
    """(ffi, lib) for ``target``, building the kernel on first use. Raises BuildError without a compiler."""
    cc = compiler()
    if cc is None:
        raise BuildError(available(target) or "no C compiler")
    return _load(target, cc)


class KernelNet(FastNet):
    """A circuit run by the table-driven C kernel."""

    def __init__(self, circuit: Circuit, target: str, *, threads: int | None = None):
        super().__init__(circuit, threads=threads)
        self.target = target
        self._ffi, self._lib = library(target)
        self.tile = int(self._lib.lgc_tile_samples())
        if self.circuit.head is not None:  # head as weighted popcounts: equal/negated/constant outputs free
            # kernels with 3-input gates (AVX-512 vpternlogq) run single-reader gate pairs as one
            # and gates only the head reads are computed inside the popcount
            self.schedule, self.readout = readout_schedule(self.circuit, fuse=bool(self._lib.lgc_has_ternary()),
                                                           inline=True)
        else:
            self.schedule, self.readout = schedule(self.circuit), None

    def _run_chunk(self, x: np.ndarray | None, packed: np.ndarray | None, wstride: int, n: int,
                   scores: np.ndarray | None, bits: np.ndarray | None) -> None:
        ffi, s = self._ffi, self.schedule
        ptr = lambda arr, t: ffi.NULL if arr is None else ffi.cast(t, arr.ctypes.data)  # noqa: E731
        k = self.circuit.head.k if self.circuit.head is not None else 0
        r = self.readout
        rc = self._lib.lgc_run(s.num_inputs, s.num_slots, len(s.groups), ptr(s.groups, "int32_t *"),
                               ptr(s.gates, "int32_t *"), ptr(s.tgates, "int32_t *"), len(s.out_slots), ptr(s.out_slots, "int32_t *"), k,
                               len(r.terms) if r else 0, ptr(r.terms if r else None, "int32_t *"),
                               ptr(r.term_slots if r else None, "int32_t *"),
                               len(r.term_groups) if r else 0, ptr(r.term_groups if r else None, "int32_t *"),
                               ptr(r.term_gates if r else None, "int32_t *"),
                               ptr(r.consts if r else None, "int32_t *"),
                               ptr(x, "uint8_t *"), ptr(packed, "uint64_t *"), wstride, n,
                               ptr(scores, "int32_t *"), ptr(bits, "uint8_t *"), ffi.NULL)
        if rc != 0:
            raise MemoryError(f"the {self.target} kernel could not allocate {s.num_slots} slots")


def build(circuit: Circuit, target: str = "c", *, threads: int | None = None) -> KernelNet:
    return KernelNet(circuit, target, threads=threads)
