"""Convolutional logic gate layers (Petersen et al., "Convolutional Differentiable Logic Gate
Networks", NeurIPS 2024): ``LogicConv2d`` (logic gate trees slid over an image) and ``OrPool2d``.

``LogicConv2d``: each output channel is ONE binary tree of learned two-input gates with
``2**depth`` leaves, drawn at random from the receptive field ``(channel, dy, dx)`` when the
layer is built (buffers, so the wiring is in ``state_dict``). The same tree (same gates, same
leaf offsets) is evaluated at every output position, as a convolution shares its kernel. Padding
reads constant 0. Training is vectorised: one ``index_select`` gathers every leaf at every
position (``[batch, out, leaves, positions]``), then ``depth`` tree levels apply the shared
4-coefficient relaxation (:func:`lgc.frontend.relax.bilinear_gate`) to even/odd leaf pairs; no
Python loop over positions. Cost per sample: ``out * positions * (2**depth)`` gathered values and
``out * positions * (2**depth - 1)`` relaxed gates; memory for autograd is about twice that.

``OrPool2d``: logical OR over each pooling window. As in the paper, training relaxes OR by the
maximum (the maximum t-conorm, ``max(p, q)``), i.e. it is max pooling; on 0/1 inputs max IS OR, so
eval mode is exact. The paper notes that OR pooling does not saturate to all ones in practice:
training lowers the activation levels before pooling by itself.

Paper choices reproduced here (each can be turned off):
- residual initialisation (``residual_init=True``, the default here): logits 0 except the
  pass-through gate A (op 3) at 5.0, ~91% of the mass; a depth-3 tree then starts as "copy leaf 0".
- ``channels_per_tree=2``: each tree draws its leaves from only two randomly chosen input channels
  (the paper restricts a tree's channels; full channel connectivity is ``channels_per_tree=None``).
- ``depth=3`` trees over a ``3 x 3`` receptive field, OR pooling ``2 x 2`` stride 2 after each
  convolution block, then fully connected ``LogicLayer``s and a ``GroupSum``.
"""
from __future__ import annotations

import math

from typing import Any

import warnings

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lgc._build import BuildError
from lgc.ir import ops as _ops

from .kernels import _required
from .relax import bilinear_gate, check_parametrization, hard_ops, init_logits, relaxed_coefficients
from .walk import BuildContext, ModuleKind, Shape, check_keys, module_kind

CONV_IMPLEMENTATIONS = ("auto", "python", "cpu", "cuda")
MAX_DEPTH = 4   # the fused kernels keep a tree's 2**depth leaves on the stack / in registers
_warned: set[str] = set()


def _pair(v: Any, name: str, minimum: int) -> tuple[int, int]:
    t = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(t) != 2 or any(int(x) != x or int(x) < minimum for x in t):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {v!r}")
    return int(t[0]), int(t[1])


def conv_output_size(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                     padding: tuple[int, int]) -> tuple[int, int]:
    """Output height and width (floor, like ``torch.nn.Conv2d``); ValueError when empty."""
    out = tuple((size[i] + 2 * padding[i] - kernel[i]) // stride[i] + 1 for i in range(2))
    if min(out) < 1:
        raise ValueError(f"input {size[0]}x{size[1]} with padding {padding} is smaller than the "
                         f"{kernel[0]}x{kernel[1]} window")
    return out  # type: ignore[return-value]


def draw_tree_leaves(in_channels: int, out_channels: int, kernel: tuple[int, int], leaves: int,
                     channels_per_tree: int | None, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Leaf ``(channel, dy, dx)`` of every tree, each int64 ``[out_channels, leaves]``.

    A tree first picks ``channels_per_tree`` distinct channels (all when None or larger than
    ``in_channels``), then its leaves without replacement from those channels' ``kh * kw``
    positions (with replacement only when there are fewer positions than leaves). O(out * pool).
    """
    kh, kw = kernel
    cpt = in_channels if channels_per_tree is None else min(int(channels_per_tree), in_channels)
    if cpt < 1:
        raise ValueError(f"channels_per_tree must be >= 1 or None, got {channels_per_tree!r}")
    chans = torch.rand(out_channels, in_channels, generator=generator).argsort(dim=1)[:, :cpt]
    pool = cpt * kh * kw
    if pool >= leaves:
        pick = torch.rand(out_channels, pool, generator=generator).argsort(dim=1)[:, :leaves]
    else:
        pick = torch.randint(0, pool, (out_channels, leaves), generator=generator)
    which, pos = pick // (kh * kw), pick % (kh * kw)
    channel = chans.gather(1, which)
    return channel.contiguous(), (pos // kw).contiguous(), (pos % kw).contiguous()



def _pad_nodes(nodes: np.ndarray, ph: int, pw: int, builder: Any) -> np.ndarray:
    """``[C, H, W]`` node ids padded by ``ph``/``pw`` with the builder's constant FALSE gate."""
    if not (ph or pw):
        return nodes
    padded = np.full((nodes.shape[0], nodes.shape[1] + 2 * ph, nodes.shape[2] + 2 * pw), builder.false(),
                     dtype=np.int64)
    padded[:, ph:ph + nodes.shape[1], pw:pw + nodes.shape[2]] = nodes
    return padded

class LogicConv2d(nn.Module):
    """A convolution whose kernel is a binary tree of learned logic gates (see the module docstring).

    Input ``[batch, in_channels, H, W]`` with values in [0, 1]; output ``[batch, out_channels, H', W']``
    with ``H' = (H + 2 padding - kernel) // stride + 1``. ``weights [out_channels, 2**depth - 1, 16 | 4]``
    holds the gate logits (``parametrization`` ``gates`` or ``inputwise``, :mod:`lgc.frontend.relax`) level by level: gates ``0 .. 2**(depth-1) - 1`` read leaf pairs
    ``(2g, 2g + 1)``, the next level reads pairs of those, the last gate is the root.
    Buffers ``leaf_channel``, ``leaf_dy``, ``leaf_dx [out_channels, 2**depth]`` are the wiring.
    ``input_size=(H, W)`` is optional; lowering uses it when the model does not say its input shape.
    ``implementation``: ``auto`` (fused C++ kernel for CPU float tensors, CUDA kernel for CUDA tensors,
    else — or when the kernel cannot be built, with a warning — the PyTorch path), ``python``, ``cpu``,
    ``cuda`` (see :mod:`lgc.frontend.conv_kernels`).
    """

    #: training relaxation (kind, temperature); set by ``lgc.frontend.set_relaxation``
    relaxation: tuple[str, float] = ("softmax", 1.0)

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any = 3, depth: int = 3,
                 stride: Any = 1, padding: Any = 0, residual_init: bool | float = True,
                 channels_per_tree: int | None = 2, implementation: str = "auto",
                 input_size: Any = None, device: Any = "cpu", generator: torch.Generator | None = None,
                 parametrization: str = "gates"):
        super().__init__()
        if int(in_channels) != in_channels or int(out_channels) != out_channels or in_channels < 1 or out_channels < 1:
            raise ValueError(f"LogicConv2d needs positive integer channel counts, got {in_channels!r}, {out_channels!r}")
        if int(depth) != depth or not 1 <= depth <= MAX_DEPTH:
            raise ValueError(f"LogicConv2d depth must be an integer in 1..{MAX_DEPTH}, got {depth!r}")
        if implementation not in CONV_IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {CONV_IMPLEMENTATIONS}, got {implementation!r}")
        logits = check_parametrization(parametrization)
        self.in_channels, self.out_channels, self.depth = int(in_channels), int(out_channels), int(depth)
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)
        self.input_size = None if input_size is None else _pair(input_size, "input_size", 1)
        self.residual_init = residual_init
        self.channels_per_tree = None if channels_per_tree is None else int(channels_per_tree)
        self.implementation = implementation
        self.parametrization = parametrization
        gates = 2 ** self.depth - 1
        w = init_logits(self.out_channels * gates, parametrization, residual_init, device)
        self.weights = nn.Parameter(w.reshape(self.out_channels, gates, logits))
        ch, dy, dx = draw_tree_leaves(self.in_channels, self.out_channels, self.kernel_size, 2 ** self.depth,
                                      self.channels_per_tree, generator)
        self.register_buffer("leaf_channel", ch.to(device))
        self.register_buffer("leaf_dy", dy.to(device))
        self.register_buffer("leaf_dx", dx.to(device))

    @property
    def leaves(self) -> int:
        return 2 ** self.depth

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return conv_output_size(size, self.kernel_size, self.stride, self.padding)

    def check_wiring(self) -> None:
        """ValueError unless the leaf buffers are int64 ``[out, 2**depth]`` inside the receptive field."""
        shape = (self.out_channels, self.leaves)
        for name, t, hi in (("leaf_channel", self.leaf_channel, self.in_channels),
                            ("leaf_dy", self.leaf_dy, self.kernel_size[0]), ("leaf_dx", self.leaf_dx, self.kernel_size[1])):
            if t.dtype != torch.int64 or tuple(t.shape) != shape:
                raise ValueError(f"{name} must be int64 {list(shape)}, got {t.dtype} {list(t.shape)}")
            if int(t.min()) < 0 or int(t.max()) >= hi:
                raise ValueError(f"{name} values must lie in 0..{hi - 1}, got {int(t.min())}..{int(t.max())}")

    def _load_from_state_dict(self, state_dict, prefix, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.check_wiring()

    def level_slices(self) -> list[slice]:
        """Gate index ranges of the tree levels, leaves' level first."""
        out, start = [], 0
        for lvl in range(self.depth):
            n = 2 ** (self.depth - 1 - lvl)
            out.append(slice(start, start + n))
            start += n
        return out

    def coefficients(self) -> torch.Tensor:
        """Relaxation coefficients ``[out, 2**depth - 1, 4]`` for the current mode (hard in eval)."""
        return relaxed_coefficients(self)

    def gather_index(self, height: int, width: int) -> torch.Tensor:
        """Flat index ``[out * leaves * positions]`` into a padded ``[C, H + 2ph, W + 2pw]`` sample.

        Computed from the leaf buffers on every call (O(out * leaves * positions), batch-independent):
        a cache would go stale when the wiring is changed in place (``leaf_dx.data.copy_``), which
        neither torch's version counters nor ``load_state_dict`` hooks see."""
        (ph, pw), (sh, sw) = self.padding, self.stride
        ho, wo = self.output_size((height, width))
        hp, wp = height + 2 * ph, width + 2 * pw
        dev = self.leaf_channel.device
        base = (self.leaf_channel * hp + self.leaf_dy) * wp + self.leaf_dx          # [O, L]
        oy = torch.arange(ho, device=dev) * sh * wp
        ox = torch.arange(wo, device=dev) * sw
        pos = (oy[:, None] + ox[None, :]).reshape(-1)                                # [P]
        return (base[:, :, None] + pos[None, None, :]).reshape(-1).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"LogicConv2d({self.in_channels}, {self.out_channels}) expects input "
                             f"[batch, {self.in_channels}, H, W], got {list(x.shape)}")
        if not x.is_floating_point():
            x = x.to(self.weights.dtype)
        batch, _, height, width = x.shape
        ho, wo = self.output_size((height, width))
        c = self.coefficients().to(x.dtype)
        lib = self._kernel(x)
        if lib is not None:
            from .conv_kernels import tree_conv
            return tree_conv(self, x, c, lib)
        ph, pw = self.padding
        xp = F.pad(x, (pw, pw, ph, ph)) if ph or pw else x
        idx = self.gather_index(height, width)
        flat = xp.reshape(batch, math.prod(xp.shape[1:]))  # (not -1: a batch of 0 is allowed)
        v = flat.index_select(1, idx).view(batch, self.out_channels, self.leaves, ho * wo)
        for sl in self.level_slices():
            v = bilinear_gate(v[:, :, 0::2], v[:, :, 1::2], c[:, sl].unsqueeze(2))
        return v.view(batch, self.out_channels, ho, wo)

    def _kernel(self, x: torch.Tensor) -> Any:
        """The fused kernel library for ``x``, or None for the PyTorch path (see ``implementation``)."""
        from . import conv_kernels
        impl, dev = self.implementation, x.device.type
        kernel_dtype = x.dtype in (torch.float32, torch.float64)
        if impl == "python" or (impl == "auto" and (not kernel_dtype or dev not in ("cpu", "cuda"))):
            return None
        if impl in ("cpu", "cuda"):
            if dev != impl or not kernel_dtype:
                raise ValueError(f"implementation={impl!r} needs a float32/float64 {impl.upper()} tensor, "
                                 f"got {x.dtype} on {x.device}")
            return conv_kernels.cpu_library() if impl == "cpu" else conv_kernels.cuda_library()
        try:
            return conv_kernels.cpu_library() if dev == "cpu" else conv_kernels.cuda_library()
        except BuildError as e:
            feature = "cpu-kernel" if dev == "cpu" else "gpu"
            if feature in _required():
                raise
            if dev not in _warned:
                _warned.add(dev)
                warnings.warn(f"lgc: the fused {dev} logic-conv kernel is unavailable, using the (slower) PyTorch "
                              f"path. Reason: {e}", RuntimeWarning, stacklevel=3)
            return None

    def hard_ops(self) -> np.ndarray:
        """Eval-mode op code of every gate, uint8 ``[out, 2**depth - 1]``."""
        return hard_ops(self.weights).cpu().numpy().astype(np.uint8)

    def config(self) -> dict[str, Any]:
        """Constructor arguments as plain data."""
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "depth": self.depth, "stride": list(self.stride),
                "padding": list(self.padding), "residual_init": self.residual_init,
                "channels_per_tree": self.channels_per_tree, "implementation": self.implementation,
                "input_size": None if self.input_size is None else list(self.input_size),
                "parametrization": self.parametrization}

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, depth={self.depth}, "
                f"stride={self.stride}, padding={self.padding}, channels_per_tree={self.channels_per_tree}"
                + ("" if self.parametrization == "gates" else f", parametrization={self.parametrization!r}"))


class OrPool2d(nn.Module):
    """Logical OR over ``kernel_size`` windows with ``stride`` (default: the kernel size).

    Training relaxes OR by the maximum (max pooling, as the paper does); on 0/1 inputs max is OR,
    so eval mode (same code) is exact. ``padding`` pads with FALSE (0). Lowering: a balanced tree of
    OR gates (op 7) per window, ``kh * kw - 1`` gates per output. On CPU float tensors without
    padding, once a LogicConv2d has loaded the CPU conv kernel, the pooling runs there (on the kernels'
    threads; ``F.max_pool2d``'s values and gradients, bit for bit); otherwise ``F.max_pool2d``.
    """

    def __init__(self, kernel_size: Any = 2, stride: Any = None, padding: Any = 0):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"OrPool2d padding {self.padding} must be at most half the kernel {self.kernel_size}")

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return conv_output_size(size, self.kernel_size, self.stride, self.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"OrPool2d expects [batch, C, H, W], got {list(x.shape)}")
        if not x.is_floating_point():
            x = x.to(torch.float32)
        out_hw = self.output_size(tuple(x.shape[2:]))
        ph, pw = self.padding
        kh, kw = self.kernel_size
        if not (ph or pw) and kh * kw <= 256 and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
            from . import conv_kernels
            lib = conv_kernels.loaded_cpu_library()  # loaded by a LogicConv2d: this never starts a build
            if lib is not None:
                return conv_kernels.or_pool(x, self.kernel_size, self.stride, out_hw, lib)
        if ph or pw:   # pad with 0 (FALSE), not max_pool2d's -inf: the same on [0, 1] inputs, and explicit
            x = F.pad(x, (pw, pw, ph, ph))
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def config(self) -> dict[str, Any]:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride), "padding": list(self.padding)}

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


def logic_tree_net(in_channels: int, image_size: Any, k: int, *, num_classes: int = 10, tau: float = 10.0,
                   blocks: int = 4, depth: int = 3, fc: Any = (1280, 640, 320), thresholds: Any = None,
                   residual_init: bool | float = True, implementation: str = "auto",
                   parametrization: str = "gates", last_pool: bool = True) -> nn.Sequential:
    """A LogicTreeNet-shaped model (Petersen et al. 2024, Fig. 1, as we read it): ``blocks`` blocks of
    [LogicConv2d 3x3, tree ``depth``, padding 1 -> OrPool2d 2x2 stride 2] with ``k, 4k, 16k, 32k, ...``
    channels (capped at 32k), then Flatten and fully connected LogicLayers of ``fc[i] * k`` gates, then
    GroupSum(num_classes, tau). ``thresholds``: when given, a leading Binarize (one channel plane per
    threshold) + Unflatten, so the model takes raw images ``[N, C*H*W]`` scaled to [0, 1].
    The last FC width is rounded down to a multiple of ``num_classes``. ``parametrization``: of every
    logic layer (``gates`` or ``inputwise``). ``last_pool=False``: no OrPool2d after the last block (the
    FC layers read 4x the bits; on MNIST this removed most of the discretisation gap).
    """
    from .binarize import Binarize
    from .layers import GroupSum, LogicLayer
    from .stack import sequential
    h, w = _pair(image_size, "image_size", 1)
    mods: list[nn.Module] = []
    channels = int(in_channels)
    if thresholds is not None:
        b = Binarize(thresholds, num_features=channels * h * w)
        mods += [b, nn.Unflatten(1, (b.num_thresholds * channels, h, w))]
        channels *= b.num_thresholds
    widths = [k * min(4 ** i, 32) for i in range(blocks)]
    for i, out in enumerate(widths):
        mods += [LogicConv2d(channels, out, 3, depth=depth, padding=1, residual_init=residual_init,
                             implementation=implementation, parametrization=parametrization,
                             input_size=(h, w) if i == 0 and thresholds is None else None)]
        channels = out
        if last_pool or i < blocks - 1:
            mods.append(OrPool2d(2))
            h, w = h // 2, w // 2
    width = channels * h * w
    mods.append(nn.Flatten())
    sizes = [int(f) * k for f in fc]
    sizes[-1] -= sizes[-1] % num_classes
    for out in sizes:
        mods.append(LogicLayer(width, out, residual_init=residual_init, parametrization=parametrization,
                               implementation=implementation if implementation != "cpu" else "auto"))
        width = out
    mods.append(GroupSum(num_classes, tau))
    return sequential(*mods)


# -- how these modules lower and round-trip through a checkpoint config (lgc.frontend.walk) ----------
_CONV_KEYS = ("in_channels", "out_channels", "kernel_size", "depth", "stride", "padding", "residual_init",
              "channels_per_tree", "implementation", "input_size", "parametrization")
_POOL_KEYS = ("kernel_size", "stride", "padding")


def _image_shape(what: str, channels: int | None, shape: Shape) -> None:
    if len(shape) != 3 or (channels is not None and shape[0] != channels):
        c = "C" if channels is None else str(channels)
        raise ValueError(f"{what} needs a [{c}, H, W] input, got {list(shape)} (put an nn.Unflatten(1, (C, H, W)) "
                         f"before it, or pass input_shape)")


@module_kind(LogicConv2d, "conv")
class LogicConv2dKind(ModuleKind):
    """``[C, H, W] -> [out, H', W']``: one copy of each tree per output position (positions expand into gates)."""

    def output_shape(self, m: LogicConv2d, shape: Shape) -> Shape:
        _image_shape(f"LogicConv2d({m.in_channels}, {m.out_channels})", m.in_channels, shape)
        return (m.out_channels, *m.output_size(shape[1:]))

    def input_shape(self, m: LogicConv2d) -> Shape | None:
        return None if m.input_size is None else (m.in_channels, *m.input_size)

    def lower(self, m: LogicConv2d, builder: Any, nodes: np.ndarray) -> np.ndarray:
        # padding reads the builder's constant FALSE gate, which constant folding later removes
        m.check_wiring()
        (ph, pw), (sh, sw) = m.padding, m.stride
        ho, wo = m.output_size(nodes.shape[1:])
        padded = _pad_nodes(nodes, ph, pw, builder)
        ch, dy, dx = (t.detach().cpu().numpy()[:, :, None, None] for t in (m.leaf_channel, m.leaf_dy, m.leaf_dx))
        rows = (np.arange(ho) * sh)[None, None, :, None]
        cols = (np.arange(wo) * sw)[None, None, None, :]
        v = padded[ch, dy + rows, dx + cols]                                   # [O, L, H', W']
        ops = m.hard_ops()
        for sl in m.level_slices():
            op = np.broadcast_to(ops[:, sl, None, None], v[:, 0::2].shape)
            v = builder.gates(op, v[:, 0::2], v[:, 1::2])
        return v[:, 0]

    def config(self, m: LogicConv2d) -> dict[str, Any]:
        return m.config()

    def model_defaults(self, m: LogicConv2d) -> dict[str, Any]:
        return {"dtype": str(m.weights.dtype).replace("torch.", "")}

    def build(self, spec: Any, shape: Shape, ctx: BuildContext) -> LogicConv2d:
        kw = check_keys(spec, _CONV_KEYS, "conv")
        if ctx.implementation is not None:
            kw["implementation"] = ctx.implementation
        kw.setdefault("parametrization", ctx.config.get("parametrization", "gates"))
        return LogicConv2d(**kw, device=ctx.device)


@module_kind(OrPool2d, "or_pool")
class OrPool2dKind(ModuleKind):
    """``[C, H, W] -> [C, H', W']``: a balanced tree of OR gates (op 7) per window."""

    def output_shape(self, m: OrPool2d, shape: Shape) -> Shape:
        _image_shape("OrPool2d", None, shape)
        return (shape[0], *m.output_size(shape[1:]))

    def lower(self, m: OrPool2d, builder: Any, nodes: np.ndarray) -> np.ndarray:
        (kh, kw), (sh, sw), (ph, pw) = m.kernel_size, m.stride, m.padding
        ho, wo = m.output_size(nodes.shape[1:])
        padded = _pad_nodes(nodes, ph, pw, builder)
        rows = (np.arange(ho) * sh)[:, None, None, None] + np.arange(kh)[None, None, :, None]
        cols = (np.arange(wo) * sw)[None, :, None, None] + np.arange(kw)[None, None, None, :]
        window = padded[:, rows, cols].reshape(nodes.shape[0], ho, wo, kh * kw)
        return builder.reduce(_ops.OR, window)

    def config(self, m: OrPool2d) -> dict[str, Any]:
        return m.config()

    def build(self, spec: Any, shape: Shape, ctx: BuildContext) -> OrPool2d:
        return OrPool2d(**check_keys(spec, _POOL_KEYS, "or_pool"))
