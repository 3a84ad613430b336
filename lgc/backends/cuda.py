"""The ``cuda`` target: the packed-bits runtime (``cuda/runtime.cu``) on an NVIDIA GPU.

The runtime is table-driven (see the comment at the top of runtime.cu): it is built by nvcc once
per toolkit (sm_80 and sm_90 code plus compute_90 PTX, cached by content hash in
``lgc._build.cache_dir()``) and loaded with ctypes (no cffi, no torch needed); a circuit is
uploaded as tables (:mod:`._cuda_tables`) when the net is built, so building a net costs no
compile time after the first.

``net(x)`` takes what every target takes (bool / 0-1 / raw-feature numpy arrays, PackedBits) and
returns numpy; given a CUDA torch tensor (bool, uint8 0/1, or raw features when the circuit has an
input encoder) it runs on that tensor's memory with no host round trip, on torch's current
stream, and returns a torch int32 (uint8 bits without a head) tensor on the same device without
waiting for the GPU. The batch runs in chunks whose node values fit ``memory_bytes`` (default
2 GiB) of device workspace (node values in liveness slots, plus staging). A net lives on the device current when it was built; one call at a
time per net (calls are serialised by a lock).
"""
from __future__ import annotations

import ctypes
import functools
import os
import threading
from typing import Any

import numpy as np

from .._build import BuildError, build_shared_library, cuda_source, cuda_sources, memoize_build, nvcc_path
from ..ir import Circuit, PackedBits
from ..ir.packed import batch_layout, input_bits
from ._common import CompiledNet
from ._cuda_tables import CudaTables, tables

TARGETS = ("cuda",)
SOURCE_NAME = "runtime.cu"
#: nvcc flags: SASS for Ampere (sm_80) and Hopper (sm_90), PTX for later GPUs to JIT.
FLAGS = ["-O3", "-shared", "-Xcompiler", "-fPIC", "-std=c++17",
         "-gencode", "arch=compute_80,code=sm_80",
         "-gencode", "arch=compute_90,code=sm_90",
         "-gencode", "arch=compute_90,code=compute_90"]
DEFAULT_MEMORY_BYTES = 2 << 30


def source() -> str:
    """The runtime's CUDA source (package data ``lgc._cuda``, else the repository's ``cuda/``)."""
    return cuda_source(SOURCE_NAME)


@functools.lru_cache(maxsize=None)
def device_reason() -> str | None:
    """None when the NVIDIA driver reports at least one CUDA device, else why not (driver API via
    ctypes: needs neither torch nor a build)."""
    try:
        drv = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no CUDA device (no NVIDIA driver: libcuda.so.1 cannot be loaded)"
    rc = drv.cuInit(0)
    if rc != 0:
        return f"no CUDA device (cuInit failed with CUresult {rc})"
    count = ctypes.c_int(0)
    rc = drv.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0 or count.value < 1:
        return "no CUDA device (the driver reports none)"
    return None


def available(target: str = "cuda") -> str | None:
    if target not in TARGETS:
        return f"unknown target {target!r}"
    if nvcc_path() is None:
        return (f"no nvcc (LGC_NVCC={os.environ['LGC_NVCC']!r} not found)" if os.environ.get("LGC_NVCC")
                else "no nvcc (set LGC_NVCC or put the CUDA toolkit's nvcc on PATH)")
    return device_reason()


_P, _I64, _INT = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int


_SIGNATURES = {
    "lgc_cu_device_count": [ctypes.POINTER(_INT)],
    "lgc_cu_malloc": [ctypes.POINTER(_P), _I64],
    "lgc_cu_free": [_P],
    "lgc_cu_memcpy": [_P, _P, _I64],
    "lgc_cu_synchronize": [],
    "lgc_cu_net_create": [_I64, _I64, _I64, _P, _I64, _P, _I64, _P, _I64, ctypes.POINTER(_P)],
    "lgc_cu_net_free": [_P],
    "lgc_cu_net_device": [_P],
    "lgc_cu_pack": [_P, _I64, _I64, _P, _I64, _P],
    "lgc_cu_run": [_P, _P, _INT, _I64, _I64, _P, _INT, _I64, _P],
    "lgc_cu_time_runs": [_P, _P, _INT, _I64, _I64, _P, _I64, _INT, ctypes.POINTER(ctypes.c_float)],
}


def bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the runtime's C signatures on a loaded build of ``runtime.cu`` (the nvcc build, or
    the CPU emulation of it in ``tools/cuda_emu``). Returns ``lib``."""
    for name, args in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = _INT
    lib.lgc_cu_error_string.argtypes = [_INT]
    lib.lgc_cu_error_string.restype = ctypes.c_char_p
    return lib


@memoize_build
def library() -> ctypes.CDLL:
    """Build (once, cached on disk) and load the runtime. Raises BuildError — the same one again
    on later calls: a failed build is not retried within a process."""
    nvcc = nvcc_path()
    if nvcc is None:
        raise BuildError("nvcc not found (set LGC_NVCC or put nvcc on PATH)")
    path = build_shared_library(cuda_sources(SOURCE_NAME), nvcc, FLAGS, kind="cuda-runtime")
    try:
        lib = bind(ctypes.CDLL(str(path)))
    except OSError as e:
        raise BuildError(f"cannot load the CUDA runtime {path}: {e}") from e
    count = _INT(0)
    rc = lib.lgc_cu_device_count(ctypes.byref(count))
    if rc != 0 or count.value < 1:
        why = lib.lgc_cu_error_string(rc).decode() if rc else "no device"
        raise BuildError(f"the CUDA runtime loaded but finds no usable device: {why}")
    return lib


def check(rc: int, what: str = "lgc CUDA runtime call", lib: ctypes.CDLL | None = None) -> None:
    """Raise RuntimeError naming the CUDA error when ``rc`` is not 0."""
    if rc != 0:
        lib = lib or library()
        raise RuntimeError(f"{what} failed: {lib.lgc_cu_error_string(rc).decode()} (code {rc})")


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "data_ptr")


class CudaNet(CompiledNet):
    """A Circuit uploaded to the GPU. See the module docstring for inputs, outputs and streams."""

    target = "cuda"

    def __init__(self, circuit: Circuit, *, threads: int | None = None, memory_bytes: int | None = None,
                 runtime: ctypes.CDLL | None = None):
        super().__init__(circuit, threads=threads)
        self._handle = None
        #: the loaded runtime: the nvcc build, or ``runtime`` (e.g. its CPU emulation, for tests)
        self.lib = library() if runtime is None else bind(runtime)
        self.tables: CudaTables = tables(self.circuit)
        budget = DEFAULT_MEMORY_BYTES if memory_bytes is None else int(memory_bytes)
        if budget < 1:
            raise ValueError(f"memory_bytes must be positive, got {memory_bytes!r}")
        #: words (64 samples) per chunk: one chunk's workspace (node values + staging) fits ``memory_bytes``
        self.chunk_words = max(1, budget // self.tables.bytes_per_chunk_word())
        t = self.tables
        handle = _P()
        check(self.lib.lgc_cu_net_create(t.num_inputs, t.num_slots, t.rows.shape[0], t.rows.ctypes.data,
                                         t.num_levels, t.level_bounds.ctypes.data, t.out_slots.size,
                                         t.out_slots.ctypes.data, t.k, ctypes.byref(handle)), "uploading the circuit",
              self.lib)
        self._handle = handle
        self.device = self.lib.lgc_cu_net_device(handle)
        self._lock = threading.Lock()

    def __del__(self) -> None:
        if getattr(self, "_handle", None) is not None:
            try:
                self.lib.lgc_cu_net_free(self._handle)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass
            self._handle = None

    @property
    def _width(self) -> int:
        return self.tables.k or self.circuit.num_outputs

    def run_raw(self, x_ptr: int, x_kind: int, wstride: int, n: int, out_ptr: int, out_on_device: bool,
                stream: int | None = None) -> None:
        """The C entry point, for callers holding raw pointers (x_kind: 0 host rows, 1 device rows,
        2 host words, 3 device words; see ``lgc_cu_run`` in runtime.cu)."""
        with self._lock:
            check(self.lib.lgc_cu_run(self._handle, x_ptr, x_kind, wstride, n, out_ptr, int(out_on_device),
                                      self.chunk_words, stream), "lgc_cu_run", self.lib)

    def __call__(self, x: Any):
        if _is_torch(x) and x.device.type == "cuda":
            return self._call_tensor(x)
        data = input_bits(self.circuit, x)
        if isinstance(data, PackedBits):
            n, words = data.n, data.words
            if words.strides[1] != 8 or words.strides[0] % 8:
                words = np.ascontiguousarray(words)
            src, kind, wstride = words, 2, words.strides[0] // 8 if words.shape[0] > 1 else words.shape[1]
        else:
            n = data.shape[0]
            src = np.ascontiguousarray(data).view(np.uint8) if data.dtype == bool \
                else np.ascontiguousarray(data, dtype=np.uint8)
            kind, wstride = 0, 0
        out = np.zeros((n, self._width), dtype=np.int32 if self.tables.k else np.uint8)
        if n and out.size:
            self.run_raw(src.ctypes.data, kind, wstride, n, out.ctypes.data, False)
        return out

    def _call_tensor(self, x: Any):
        import torch
        c = self.circuit
        if x.device.index != self.device:
            raise ValueError(f"this cuda net lives on cuda:{self.device}; input is on {x.device}")
        enc = c.input_encoder
        if x.dtype.is_complex:
            raise ValueError(f"input must be a bool or numeric tensor, got {x.dtype}")
        features = batch_layout(c, tuple(x.shape), x.dtype == torch.bool)  # the contract every target shares
        if features is None:
            if x.dtype != torch.bool:
                if x.numel() and not bool(((x == 0) | (x == 1)).all()):
                    raise ValueError("input bits must be 0 or 1 (the circuit has no input encoder for raw features)")
                if x.dtype != torch.uint8:
                    x = x.to(torch.uint8)
        else:
            flat = x.reshape(x.shape[0], features)
            if flat.dtype.is_floating_point and bool(torch.isnan(flat).any()):
                raise ValueError("raw input holds NaN")
            feature = torch.as_tensor(enc.feature, dtype=torch.long, device=x.device)
            threshold = torch.as_tensor(enc.threshold, dtype=torch.float64, device=x.device)
            x = flat.index_select(1, feature).double() > threshold
        x = x.contiguous()
        n = x.shape[0]
        out = torch.zeros((n, self._width), dtype=torch.int32 if self.tables.k else torch.uint8, device=x.device)
        if n and out.numel():
            stream = torch.cuda.current_stream(x.device).cuda_stream
            self.run_raw(x.data_ptr(), 1, 0, n, out.data_ptr(), True, stream)
        return out

    def run_device_words(self, words: Any, n: int):
        """Run on packed words already on this GPU: a torch int64/uint64 CUDA tensor
        [num_inputs, >= ceil(n/64)] (sample j = bit j%64 of word j//64). Returns a torch tensor."""
        import torch
        c = self.circuit
        if words.dim() != 2 or words.shape[0] != c.num_inputs or words.shape[1] < (n + 63) // 64 \
                or words.element_size() != 8 or words.device.type != "cuda":
            raise ValueError(f"packed words must be a 64-bit CUDA tensor [{c.num_inputs}, >= {(n + 63) // 64}], "
                             f"got {words.dtype}{list(words.shape)} on {words.device}")
        if words.stride(1) != 1:
            words = words.contiguous()
        out = torch.zeros((n, self._width), dtype=torch.int32 if self.tables.k else torch.uint8, device=words.device)
        if n and out.numel():
            stream = torch.cuda.current_stream(words.device).cuda_stream
            self.run_raw(words.data_ptr(), 3, words.stride(0) if words.shape[0] > 1 else words.shape[1], n, out.data_ptr(), True, stream)
        return out

    def predict(self, x: Any):
        """int64[N] class index (argmax, lowest index on ties); a CUDA tensor for CUDA-tensor input."""
        if self.circuit.head is None:
            raise ValueError("predict needs a circuit with a group-sum head")
        scores = self(x)
        if _is_torch(scores):
            return scores.argmax(dim=1).long()  # torch returns the first maximal index
        return np.argmax(scores, axis=1).astype(np.int64)


def build(circuit: Circuit, target: str = "cuda", *, threads: int | None = None,
          memory_bytes: int | None = None) -> CudaNet:
    """Upload ``circuit`` to the current CUDA device (building the runtime on first use)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}")
    return CudaNet(circuit, threads=threads, memory_bytes=memory_bytes)
