"""Fused kernels of a logic-gate-tree convolution: CPU (``conv_tree_cpu.cpp``, g++, threads from the
logic-layer kernels' pool ``chunk_pool.h``, ``kernels.get_num_threads()`` of them) and
CUDA (``cuda/logic_conv.cu``, nvcc), both torch-free shared libraries called through ctypes with
tensor data pointers, behind one autograd Function.

Both compute the whole tree per (sample, output channel, position) in registers/stack and
recompute it in the backward pass, so memory is the input and output only (the PyTorch path of
:class:`~lgc.frontend.conv.LogicConv2d` keeps every tree level for autograd). The CPU library is
built once per source text and flags (a few seconds with g++) into ``lgc._build.cache_dir()``.
"""
from __future__ import annotations

import ctypes
import pathlib
from typing import Any

import torch

from lgc._build import BuildError, build_shared_library, find_tool, memoize_build
from lgc._build import cuda_source as read_cuda_source

from .kernels import build_cuda_kernel, check_operands, dtype_suffix, get_num_threads, loaded_cpu_backend

_HERE = pathlib.Path(__file__).resolve().parent
_P, _I64, _INT = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
_GEOMETRY = [_I64, _I64, _I64, _I64, _P, _P, _P, _I64, _I64, _I64, _I64, _I64, _I64, _I64, _I64]


class _ConvLib:
    """ctypes bindings of ``lgc_conv_tree_{forward,backward}_{f32,f64}`` (same geometry on CPU and
    CUDA; the CUDA ones end with a device and a stream, the CPU ones with a thread count).
    ``device_type`` is the tensors' device: ``"cpu"`` for the CPU kernel and for the CPU emulation
    of the CUDA one (``tools/cuda_emu``), ``"cuda"`` for the nvcc build."""

    def __init__(self, lib: ctypes.CDLL, cuda: bool, *, device_type: str | None = None):
        self.lib, self.cuda = lib, cuda
        self.device_type = device_type or ("cuda" if cuda else "cpu")
        tail = [_INT, _P] if cuda else [_INT]   # a device and a CUDA stream, or a CPU thread count
        for t in ("f32", "f64"):
            fwd = getattr(lib, f"lgc_conv_tree_forward_{t}")
            fwd.argtypes = [_P, *_GEOMETRY, _P, _P, *tail]
            fwd.restype = ctypes.c_int
            bwd = getattr(lib, f"lgc_conv_tree_backward_{t}")
            bwd.argtypes = [_P, *_GEOMETRY, _P, _P, _P, _P, *tail]
            bwd.restype = ctypes.c_int
            if not cuda:  # OR pooling with its argmax (OrPool2d), CPU only
                pool = [_I64] * 9
                getattr(lib, f"lgc_or_pool_forward_{t}").argtypes = [_P, *pool, _P, _P, _INT]
                getattr(lib, f"lgc_or_pool_backward_{t}").argtypes = [_P, _P, *pool, _P, _INT]
                getattr(lib, f"lgc_or_pool_forward_{t}").restype = ctypes.c_int
                getattr(lib, f"lgc_or_pool_backward_{t}").restype = ctypes.c_int

    def _tail(self, x: torch.Tensor) -> tuple[int | None, ...]:
        if not self.cuda:
            return (get_num_threads(),)
        if self.device_type != "cuda":
            return 0, None
        return x.device.index or 0, torch.cuda.current_stream(x.device).cuda_stream

    def _check(self, rc: int) -> None:
        if rc != 0:
            detail = ""
            if self.cuda and hasattr(self.lib, "lgc_conv_error_string"):
                self.lib.lgc_conv_error_string.restype = ctypes.c_char_p
                detail = ": " + self.lib.lgc_conv_error_string(rc).decode()
            raise RuntimeError(f"lgc logic-conv kernel failed with code {rc}{detail}")

    def forward(self, x: torch.Tensor, geom: list[Any], c: torch.Tensor, out_shape: tuple[int, ...],
                leaves: tuple[torch.Tensor, ...]) -> torch.Tensor:
        check_operands(self.device_type, x, indices=leaves, same=(c,))
        y = torch.empty(out_shape, dtype=x.dtype, device=x.device)
        fn = getattr(self.lib, f"lgc_conv_tree_forward_{dtype_suffix(x)}")
        self._check(fn(x.data_ptr(), *geom, c.data_ptr(), y.data_ptr(), *self._tail(x)))
        return y

    def or_pool_forward(self, x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                        out_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(y [B, C, Ho, Wo], arg uint8 [B, C, Ho, Wo]) of a contiguous CPU float x [B, C, H, W]."""
        check_operands(self.device_type, x)
        b, c, h, w = x.shape
        y = torch.empty((b, c, *out_hw), dtype=x.dtype)
        arg = torch.empty((b, c, *out_hw), dtype=torch.uint8)
        fn = getattr(self.lib, f"lgc_or_pool_forward_{dtype_suffix(x)}")
        self._check(fn(x.data_ptr(), b * c, h, w, *kernel, *stride, *out_hw, y.data_ptr(), arg.data_ptr(),
                       get_num_threads()))
        return y, arg

    def or_pool_backward(self, gy: torch.Tensor, arg: torch.Tensor, in_shape: tuple[int, ...],
                         kernel: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
        """grad_x [B, C, H, W] of or_pool_forward from grad_y (contiguous, like y) and its arg."""
        check_operands(self.device_type, gy)
        b, c, h, w = in_shape
        gx = torch.empty(in_shape, dtype=gy.dtype)
        fn = getattr(self.lib, f"lgc_or_pool_backward_{dtype_suffix(gy)}")
        self._check(fn(gy.data_ptr(), arg.data_ptr(), b * c, h, w, *kernel, *stride, *gy.shape[2:], gx.data_ptr(),
                       get_num_threads()))
        return gx

    def backward(self, x: torch.Tensor, geom: list[Any], c: torch.Tensor, gy: torch.Tensor, need_gx: bool,
                 leaves: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor | None, torch.Tensor]:
        check_operands(self.device_type, x, indices=leaves, same=(c, gy))
        gx = torch.empty_like(x) if need_gx else None
        gc = torch.empty_like(c)
        fn = getattr(self.lib, f"lgc_conv_tree_backward_{dtype_suffix(x)}")
        self._check(fn(x.data_ptr(), *geom, c.data_ptr(), gy.data_ptr(), gx.data_ptr() if need_gx else None,
                       gc.data_ptr(), *self._tail(x)))
        return gx, gc


@memoize_build
def cpu_library() -> _ConvLib:
    """Build (first time, seconds) or load the CPU kernel. Raises BuildError."""
    cxx = find_tool("g++", "LGC_CXX") or find_tool("c++")
    if cxx is None:
        raise BuildError("no C++ compiler (g++) found; set LGC_CXX")
    flags = ["-O3", "-shared", "-fPIC", "-fopenmp-simd", "-pthread", "-std=c++17"]
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    sources = {name: (_HERE / name).read_text() for name in ("conv_tree_cpu.cpp", "chunk_pool.h")}
    lib = build_shared_library(sources, cxx, [*flags, "-I."], kind="conv-tree-cpu", link_flags=["-pthread"])
    try:
        loaded = _ConvLib(ctypes.CDLL(str(lib)), cuda=False)
    except OSError as e:
        raise BuildError(f"cannot load the CPU logic-conv kernel {lib}: {e}") from e
    global _cpu_loaded
    _cpu_loaded = loaded
    return loaded


_cpu_loaded: _ConvLib | None = None


def loaded_cpu_library() -> _ConvLib | None:
    """The CPU conv kernel if this process has loaded it (never starts a build), else None."""
    return _cpu_loaded


def cuda_source() -> str:
    return read_cuda_source("logic_conv.cu")


@memoize_build
def cuda_library(arch: str | None = None) -> _ConvLib:
    """Build (once per source and GPU arch) and load the CUDA kernel. Raises BuildError."""
    lib = build_cuda_kernel("logic_conv.cu", arch, kind="cuda-conv")
    try:
        return _ConvLib(ctypes.CDLL(str(lib)), cuda=True)
    except OSError as e:
        raise BuildError(f"cannot load the CUDA logic-conv kernel {lib}: {e}") from e


def cpu_kernel_unavailable() -> str | None:
    """None when the CPU conv kernel builds and loads, else why not."""
    try:
        cpu_library()
    except BuildError as e:
        return str(e)
    return None


class _TreeConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, c: torch.Tensor, lib: _ConvLib, geom: list[Any],
                out_shape: tuple[int, ...], keep: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, c = x.contiguous(), c.contiguous()
        ctx.save_for_backward(x, c)
        ctx.lib, ctx.geom, ctx.keep = lib, geom, keep
        return lib.forward(x, geom, c, out_shape, keep)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, gy: torch.Tensor):
        x, c = ctx.saved_tensors
        need_gx, need_gc = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_gx or need_gc):
            return None, None, None, None, None, None
        gx, gc = ctx.lib.backward(x, ctx.geom, c, _contiguous(gy), need_gx, ctx.keep)
        return gx, (gc if need_gc else None), None, None, None, None


def _contiguous(t: torch.Tensor) -> torch.Tensor:
    """``t.contiguous()``; a CPU ``[B, ...]`` gradient that is the transpose of a feature-major ``[F, B]``
    one (what a fused logic layer after a Flatten hands back) through the logic kernels' parallel
    transpose instead (0.73 ms -> ~0.1 for [128, 48, 7, 7] on one core)."""
    if t.is_contiguous() or t.device.type != "cpu" or t.dim() < 2:
        return t.contiguous()
    backend = loaded_cpu_backend()
    try:
        flat = t.view(t.shape[0], -1)  # possible when the trailing dims are one feature axis
    except RuntimeError:
        flat = None
    if backend is None or flat is None or flat.stride() != (1, t.shape[0]):
        return t.contiguous()
    return backend.contiguous(flat).view(t.shape)


def tree_conv(layer: Any, x: torch.Tensor, c: torch.Tensor, lib: _ConvLib) -> torch.Tensor:
    """The fused forward of ``layer`` (a LogicConv2d) on ``x [B, C, H, W]`` with coefficients ``c [O, G, 4]``."""
    batch, channels, height, width = x.shape
    ho, wo = layer.output_size((height, width))
    ch, dy, dx = (t.contiguous() for t in (layer.leaf_channel, layer.leaf_dy, layer.leaf_dx))
    geom = [batch, channels, height, width, ch.data_ptr(), dy.data_ptr(), dx.data_ptr(), layer.out_channels,
            layer.depth, layer.stride[0], layer.stride[1], layer.padding[0], layer.padding[1], ho, wo]
    return _TreeConv.apply(x, c, lib, geom, (batch, layer.out_channels, ho, wo), (ch, dy, dx))


class _OrPool(torch.autograd.Function):
    """OR pooling as ``F.max_pool2d`` (no padding) on the CPU kernel's pool: the same values and
    gradients (argmax by max_pool2d's rule, gradients added in its order), the argmax kept as uint8."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lib: _ConvLib, kernel: tuple[int, int], stride: tuple[int, int],
                out_hw: tuple[int, int]) -> torch.Tensor:
        x = x.contiguous()
        y, arg = lib.or_pool_forward(x, kernel, stride, out_hw)
        ctx.save_for_backward(arg)
        ctx.lib, ctx.kernel, ctx.stride, ctx.in_shape = lib, kernel, stride, tuple(x.shape)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, gy: torch.Tensor):
        (arg,) = ctx.saved_tensors
        gx = ctx.lib.or_pool_backward(gy.contiguous(), arg, ctx.in_shape, ctx.kernel, ctx.stride)
        return gx, None, None, None, None


def or_pool(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], out_hw: tuple[int, int],
            lib: _ConvLib) -> torch.Tensor:
    """``F.max_pool2d(x, kernel, stride)`` of a CPU float ``x [B, C, H, W]`` on the conv kernel's threads
    (torch's NCHW max pooling runs on one of torch's threads, 4x slower than this on one core)."""
    return _OrPool.apply(x, lib, kernel, stride, out_hw)
