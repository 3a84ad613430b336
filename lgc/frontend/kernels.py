"""The three implementations of a relaxed logic layer, and the choice between them.

All three compute ``y = c0 + c1 p + c2 q + c3 pq`` with ``p = x[:, a]``, ``q = x[:, b]`` and
gradients for ``x`` (scaled by ``grad_factor``, as difflogic) and for the coefficients ``c``:

- ``python``: PyTorch ops (three batch-sized temporaries; autograd does the backward).
- ``cpu``: a fused, multi-threaded C++ forward and backward (``logic_layer_cpu.h``; threads from
  ``chunk_pool.h``, ``get_num_threads()`` of them, default torch's count), built once with
  ``torch.utils.cpp_extension`` into ``lgc._build.cache_dir()/torch_ext`` and reused by later runs.
- ``cuda``: torch-free kernels (``cuda/logic_layer.cu``) built by nvcc into a shared library and
  called through ctypes with tensor data pointers on torch's current stream.

The kernels work feature-major (``[dim, batch]``) so a gate reads two contiguous rows; a layer
returns the transposed view of its ``[out_dim, batch]`` result, like difflogic's CUDA path, so the
next kernel layer reads it without a copy. ``auto`` takes ``cuda`` for CUDA tensors and ``cpu``
for CPU float32/float64 tensors; when a kernel cannot be built it warns once and falls back to
``python`` — unless ``LGC_REQUIRE`` names ``cpu-kernel`` (or ``gpu``), in which case it raises.
"""
from __future__ import annotations

import ctypes
import functools
import os
import pathlib
import platform
import sys
import warnings
from typing import Any, Callable, NamedTuple

import torch

from lgc._build import (BuildError, build_shared_library, cache_dir, content_key, cuda_sources, discard_if_damaged,
                        memoize_build, nvcc_path, record, verified)
from lgc._build import cuda_source as read_cuda_source

from .relax import bilinear_gate, gate_coefficients, relax_matrix

IMPLEMENTATIONS = ("auto", "python", "cpu", "cuda")
_HERE = pathlib.Path(__file__).resolve().parent
_CPU_SOURCES = ("logic_layer_cpu.cpp", "logic_layer_cpu.h", "logic_stack_cpu.h", "chunk_pool.h")
_warned: set[str] = set()


def _required() -> set[str]:
    return {r.strip() for r in os.environ.get("LGC_REQUIRE", "").split(",") if r.strip()}


# -- python ------------------------------------------------------------------------------------
class GradFactor(torch.autograd.Function):
    """Identity forward; multiplies the gradient by ``factor`` (difflogic's ``grad_factor``)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


def python_logic(x: torch.Tensor, c: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                 grad_factor: float = 1.0) -> torch.Tensor:
    """Reference implementation in PyTorch ops; ``x [batch, in_dim]`` -> ``[batch, out_dim]``."""
    if grad_factor != 1.0:
        x = GradFactor.apply(x, grad_factor)
    return bilinear_gate(x.index_select(1, a), x.index_select(1, b), c)


# -- fused kernels (shared autograd glue) ---------------------------------------------------
class _Backend:
    """A kernel pair over feature-major tensors: ``forward(xt, a, b, c) -> yt`` and
    ``backward(xt, a, b, c, gyt, need_gx) -> (gxt | None, gc)``."""

    name = "?"

    def contiguous(self, t: torch.Tensor) -> torch.Tensor:
        return t.contiguous()

    def forward(self, xt: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def backward(self, xt: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, gyt: torch.Tensor,
                 need_gx: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
        raise NotImplementedError


class _KernelLogic(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, c: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                grad_factor: float, backend: _Backend) -> torch.Tensor:
        xt = backend.contiguous(x.t())  # free when x is the previous kernel layer's output
        c = c.contiguous()
        yt = backend.forward(xt, a, b, c)
        ctx.save_for_backward(xt, c, a, b)
        ctx.grad_factor = grad_factor
        ctx.backend = backend
        return yt.t()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_y: torch.Tensor):
        xt, c, a, b = ctx.saved_tensors
        need_gx, need_gc = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_gx or need_gc):
            return None, None, None, None, None, None
        gxt, gc = ctx.backend.backward(xt, a, b, c, ctx.backend.contiguous(grad_y.t()), need_gx)
        gx = None
        if need_gx:
            gx = gxt.t()
            if ctx.grad_factor != 1.0:
                gx = gx * ctx.grad_factor
        return gx, (gc if need_gc else None), None, None, None, None


def kernel_logic(backend: _Backend, x: torch.Tensor, c: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                 grad_factor: float = 1.0) -> torch.Tensor:
    return _KernelLogic.apply(x, c, a, b, float(grad_factor), backend)


# -- cpu ---------------------------------------------------------------------------------------
def cpu_simd_flags() -> list[str]:
    """Vector flags for this host: AVX2+FMA when the CPU (as torch sees it) has them; else baseline."""
    cap = torch.backends.cpu.get_cpu_capability()
    return ["-mavx2", "-mfma"] if cap in ("AVX2", "AVX512") else []


_num_threads: int | None = None


def set_num_threads(threads: int | None) -> None:
    """Threads of the fused CPU kernels (``None``: ``torch.get_num_threads()``, the default).

    The kernels run on their own small pool (``chunk_pool.h``), not on torch's OpenMP threads, so
    the two counts are independent: ``torch.set_num_threads(1)`` with ``set_num_threads(n)`` keeps
    torch's small per-step ops (loss, GroupSum, copies) on the calling thread, where they cannot
    spin-wait against the kernel's threads for the same cores.
    """
    global _num_threads
    if threads is not None and (int(threads) != threads or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    _num_threads = None if threads is None else int(threads)


def get_num_threads() -> int:
    """Threads the fused CPU kernels use (see ``set_num_threads``)."""
    return _num_threads if _num_threads is not None else torch.get_num_threads()


class _CpuBackend(_Backend):
    name = "cpu"

    def __init__(self, module: Any):
        self.module = module

    def contiguous(self, t: torch.Tensor) -> torch.Tensor:
        return self.module.contiguous(t, get_num_threads())

    def forward(self, xt, a, b, c):
        return self.module.forward(xt, a, b, c, get_num_threads())

    def backward(self, xt, a, b, c, gyt, need_gx):
        gxt, gc = self.module.backward(xt, a, b, c, gyt, need_gx, get_num_threads())
        return (gxt if need_gx else None), gc

    def coefficients(self, weights: torch.Tensor, hard: bool) -> torch.Tensor:
        """``gate_coefficients`` with the soft case (softmax then @ RELAX) fused into one C++ pass."""
        if hard or weights.dtype not in (torch.float32, torch.float64):
            return gate_coefficients(weights, hard)
        return _CpuCoefficients.apply(weights, self)


class _CpuCoefficients(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, weights: torch.Tensor, backend: _CpuBackend) -> torch.Tensor:
        w = weights.detach().contiguous()
        c, probs = backend.module.coefficients(w, relax_matrix(w), get_num_threads())
        ctx.save_for_backward(probs)  # the backward needs softmax(w) only: no second round of exp
        ctx.backend = backend
        return c

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_c: torch.Tensor):
        (probs,) = ctx.saved_tensors
        gw = ctx.backend.module.coefficients_backward(probs, relax_matrix(probs), grad_c.contiguous(),
                                                      get_num_threads())
        return gw, None


class _FeatureMajorGroupSum(torch.autograd.Function):
    """GroupSum of a kernel layer's output (``x [batch, n]``, the transpose of a contiguous
    ``[n, batch]``) on the kernels' pool: the forward sums each group's rows in row order (torch's
    sum adds in another order: the scores differ from it in float rounding), the backward writes the
    feature-major input gradient into a cached buffer (autograd's values, bit for bit)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, k: int, tau: float, backend: _CpuBackend) -> torch.Tensor:
        ctx.n, ctx.tau, ctx.backend = x.shape[1], tau, backend
        return backend.module.group_sum_forward(x.t(), k, get_num_threads()).t() / tau

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor):
        rows = ctx.backend.module.group_sum_backward(grad / ctx.tau, ctx.n, get_num_threads())  # [n, batch]
        return rows.t(), None, None, None


def feature_major_group_sum(x: torch.Tensor, k: int, tau: float) -> torch.Tensor | None:
    """``GroupSum(k, tau)(x)`` for a kernel layer's feature-major CPU output through the fused CPU
    kernel's backward, or None when that kernel has not been loaded in this process (the caller then
    uses torch ops; this never starts a build)."""
    backend = loaded_cpu_backend()
    if backend is None or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return None
    return _FeatureMajorGroupSum.apply(x, k, float(tau), backend)


_loaded_cpu_backend: _CpuBackend | None = None


def loaded_cpu_backend() -> _CpuBackend | None:
    """The fused CPU kernel if this process has already built or loaded it (``cpu_backend()``), else
    None; never starts a build."""
    return _loaded_cpu_backend


@memoize_build
def cpu_backend() -> _CpuBackend:
    """Build (first time on this host, ~1 minute) or load the fused C++ kernel. Raises BuildError."""
    texts = [(_HERE / name).read_text() for name in _CPU_SOURCES]
    # -fno-math-errno: sqrt may vectorise (Adam); no kernel reads errno
    flags = ["-O3", "-fopenmp-simd", "-fno-math-errno", "-pthread", *cpu_simd_flags()]
    key = content_key(*texts, flags, torch.__version__, sys.version, platform.machine(), platform.node())
    name = f"lgc_logic_layer_{key[:16]}"
    build_dir = cache_dir() / "torch_ext" / name
    build_dir.mkdir(parents=True, exist_ok=True)
    built = build_dir / f"{name}.so"
    discard_if_damaged(built)  # a truncated .so would crash the import (SIGBUS); ninja then rebuilds it
    try:
        from torch.utils import cpp_extension
        module = cpp_extension.load(name=name, sources=[str(_HERE / "logic_layer_cpu.cpp")],
                                    extra_include_paths=[str(_HERE)], extra_cflags=flags,
                                    extra_ldflags=["-pthread"], build_directory=str(build_dir), verbose=False)
    except Exception as e:  # compiler missing, headers missing, ninja missing, link errors ...
        raise BuildError(f"cannot build the fused CPU logic-layer kernel: {type(e).__name__}: {e}"[:4000]) from e
    if built.exists() and not verified(built):  # freshly built: record its digest for later processes
        try:
            record(built)
        except OSError:
            pass
    global _loaded_cpu_backend
    _loaded_cpu_backend = _CpuBackend(module)
    return _loaded_cpu_backend


def cpu_kernel_unavailable() -> str | None:
    """None when the cpu kernel builds/loads, else why not (for tests and ``auto``)."""
    try:
        cpu_backend()
    except BuildError as e:
        return str(e)
    return None


# -- cuda --------------------------------------------------------------------------------------
def cuda_source() -> str:
    return read_cuda_source("logic_layer.cu")


_P = ctypes.c_void_p
_I64 = ctypes.c_int64


def check_operands(device_type: str, x: torch.Tensor, *, indices: tuple[torch.Tensor, ...] = (),
                   same: tuple[torch.Tensor | None, ...] = ()) -> None:
    """Refuse, with a ValueError, operands a kernel cannot take through raw pointers: ``x`` not a
    contiguous float32/float64 tensor on a ``device_type`` device; an index tensor (``indices``) not
    contiguous int64 on x's device; a tensor in ``same`` not contiguous with x's dtype and device.
    (A pointer to another device's memory would be an illegal address that kills the CUDA context.)"""
    if x.device.type != device_type:
        raise ValueError(f"this kernel runs on {device_type} tensors, got input on {x.device}")
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"the kernel takes float32 or float64 input, got {x.dtype}")
    for t in (x, *indices, *same):
        if t is None:
            continue
        if t.device != x.device:
            raise ValueError(f"kernel operands must all be on {x.device}; one is on {t.device} "
                             "(move the whole model and its input to one device)")
        if not t.is_contiguous():
            raise ValueError("kernel operands must be contiguous")
    for t in indices:
        if t.dtype != torch.int64:
            raise ValueError(f"connection indices must be int64, got {t.dtype}")
    for t in same:
        if t is not None and t.dtype != x.dtype:
            raise ValueError(f"kernel operands must share the input's dtype {x.dtype}, got {t.dtype}")


class _CudaBackend(_Backend):
    """The kernels of ``cuda/logic_layer.cu`` through ctypes. ``device_type`` is ``"cuda"`` for the
    nvcc build, ``"cpu"`` for its CPU emulation (``tools/cuda_emu``: host memory, no streams)."""

    name = "cuda"

    def __init__(self, lib: ctypes.CDLL, *, device_type: str = "cuda"):
        self.lib, self.device_type = lib, device_type
        for t in ("f32", "f64"):
            fwd = getattr(lib, f"lgc_logic_forward_{t}")
            fwd.argtypes = [_P, _I64, _P, _P, _P, _P, _I64, ctypes.c_int, _P]
            fwd.restype = ctypes.c_int
            bwd = getattr(lib, f"lgc_logic_backward_{t}")
            bwd.argtypes = [_P, _I64, _I64, _P, _P, _P, _P, _I64, _P, _P, ctypes.c_int, _P]
            bwd.restype = ctypes.c_int
        lib.lgc_cuda_error_string.argtypes = [ctypes.c_int]
        lib.lgc_cuda_error_string.restype = ctypes.c_char_p
        lib.lgc_cuda_probe.argtypes = [ctypes.c_int]
        lib.lgc_cuda_probe.restype = ctypes.c_int

    def _device_and_stream(self, t: torch.Tensor) -> tuple[int, int | None]:
        if self.device_type != "cuda":
            return 0, None
        return t.device.index or 0, torch.cuda.current_stream(t.device).cuda_stream

    def _check(self, rc: int) -> None:
        if rc != 0:
            raise RuntimeError(f"lgc cuda logic-layer kernel failed: {self.lib.lgc_cuda_error_string(rc).decode()}")

    def forward(self, xt, a, b, c):
        check_operands(self.device_type, xt, indices=(a, b), same=(c,))
        yt = torch.empty((c.shape[0], xt.shape[1]), dtype=xt.dtype, device=xt.device)
        fn = getattr(self.lib, f"lgc_logic_forward_{dtype_suffix(xt)}")
        self._check(fn(xt.data_ptr(), xt.shape[1], a.data_ptr(), b.data_ptr(), c.data_ptr(), yt.data_ptr(),
                       c.shape[0], *self._device_and_stream(xt)))
        return yt

    def backward(self, xt, a, b, c, gyt, need_gx):
        check_operands(self.device_type, xt, indices=(a, b), same=(c, gyt))
        gc = torch.empty_like(c)
        gxt = torch.empty_like(xt) if need_gx else None
        fn = getattr(self.lib, f"lgc_logic_backward_{dtype_suffix(xt)}")
        self._check(fn(xt.data_ptr(), xt.shape[0], xt.shape[1], a.data_ptr(), b.data_ptr(), c.data_ptr(),
                       gyt.data_ptr(), c.shape[0], gxt.data_ptr() if need_gx else None, gc.data_ptr(),
                       *self._device_and_stream(xt)))
        return gxt, gc


def dtype_suffix(t: torch.Tensor) -> str:
    """'f32' / 'f64': the suffix of a kernel entry point for ``t``'s dtype. Raises ValueError otherwise."""
    if t.dtype == torch.float32:
        return "f32"
    if t.dtype == torch.float64:
        return "f64"
    raise ValueError(f"the kernels take float32 or float64, got {t.dtype}")


def cuda_flags(arch: str) -> list[str]:
    return ["-O3", "-shared", "-Xcompiler", "-fPIC", f"-arch={arch}"]


def build_cuda_kernel(source_name: str, arch: str | None, *, kind: str) -> pathlib.Path:
    """Build a training kernel from ``cuda/`` for ``arch`` (default: PyTorch's current device),
    cached by content. Raises BuildError without a device or nvcc."""
    if arch is None:
        if not torch.cuda.is_available():
            raise BuildError("no CUDA device is available to PyTorch")
        major, minor = torch.cuda.get_device_capability()
        arch = f"sm_{major}{minor}"
    nvcc = nvcc_path()
    if nvcc is None:
        raise BuildError("nvcc not found (set LGC_NVCC or put nvcc on PATH)")
    return build_shared_library(cuda_sources(source_name), nvcc, cuda_flags(arch), kind=kind)


@memoize_build
def cuda_backend(arch: str | None = None) -> _CudaBackend:
    """Build (once per source and GPU arch) and load the CUDA kernels. Raises BuildError."""
    lib = build_cuda_kernel("logic_layer.cu", arch, kind="cuda-train")
    try:
        backend = _CudaBackend(ctypes.CDLL(str(lib)))
    except (OSError, AttributeError) as e:
        raise BuildError(f"cannot load the CUDA logic-layer kernels {lib}: {e}") from e
    if torch.cuda.is_available():
        rc = backend.lib.lgc_cuda_probe(torch.cuda.current_device())
        if rc != 0:
            raise BuildError(f"the CUDA logic-layer kernels ({arch}) cannot run here: "
                             f"{backend.lib.lgc_cuda_error_string(rc).decode()}")
    return backend


# -- choice ------------------------------------------------------------------------------------
def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


class Implementation(NamedTuple):
    """What a layer runs: ``coefficients(weights, hard) -> c`` and ``logic(x, c, a, b, grad_factor) -> y``."""

    name: str
    coefficients: Callable[[torch.Tensor, bool], torch.Tensor]
    logic: Callable[..., torch.Tensor]


PYTHON = Implementation("python", gate_coefficients, python_logic)


def _cpu() -> Implementation:
    backend = cpu_backend()
    return Implementation("cpu", backend.coefficients, functools.partial(kernel_logic, backend))


def _cuda() -> Implementation:
    return Implementation("cuda", gate_coefficients, functools.partial(kernel_logic, cuda_backend()))


def resolve(implementation: str, x: torch.Tensor) -> Implementation:
    """The implementation that runs ``implementation`` (``auto`` resolved) for input tensor ``x``."""
    if implementation == "python":
        return PYTHON
    kernel_dtype = x.dtype in (torch.float32, torch.float64)
    if implementation == "cpu":
        if x.device.type != "cpu" or not kernel_dtype:
            raise ValueError(f"implementation='cpu' needs a float32/float64 CPU tensor, got {x.dtype} on {x.device}")
        return _cpu()
    if implementation == "cuda":
        if x.device.type != "cuda" or not kernel_dtype:
            raise ValueError(f"implementation='cuda' needs a float32/float64 CUDA tensor, got {x.dtype} on {x.device}")
        return _cuda()
    if implementation != "auto":
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    if not kernel_dtype:
        return PYTHON
    if x.device.type == "cuda":
        feature, make = "gpu", _cuda
    elif x.device.type == "cpu":
        feature, make = "cpu-kernel", _cpu
    else:
        return PYTHON
    try:
        return make()
    except BuildError as e:
        if feature in _required():
            raise
        _warn_once(feature, f"lgc: the fused {x.device.type} logic-layer kernel is unavailable, falling back to "
                            f"the (slower) python implementation. Reason: {e}")
        return PYTHON
