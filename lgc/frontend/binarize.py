"""Input binarisation: raw features -> bits ``x > threshold``, lowered into the circuit's InputEncoder.

One rule serves training (unless ``train_passthrough``), evaluation, lowering and compiled
inference: ``bit = x > float32(threshold)``. Thresholds are stored as float32 and compared
exactly (in float64), so a float32 pixel equal to a threshold such as 0.1 gives the same bit in
PyTorch and in the compiled circuit.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from lgc.ir import InputEncoder

from .walk import BuildContext, ModuleKind, Shape, check_keys, module_kind


class Binarize(nn.Module):
    """Flattens ``[batch, ...]`` to ``F`` features and emits ``T * F`` bits (as floats 0/1).

    ``thresholds``: a number, a sequence of ``T`` numbers shared by all features, or a 2-D
    ``[T, F]`` array with per-feature thresholds. Bit ``t * F + f`` is ``x[:, f] > thresholds[t, f]``
    (one plane of ``F`` bits per threshold, like channels).

    ``train_passthrough=True`` (needs ``T == 1``): in train mode the flattened features pass
    through unchanged, as difflogic's MNIST experiment trains on grey values in [0, 1]; eval mode
    and lowering always threshold. Cost: one comparison per bit.
    """

    def __init__(self, thresholds: float | Sequence[float] | Any = 0.5, train_passthrough: bool = False,
                 num_features: int | None = None, device: Any = "cpu"):
        super().__init__()
        t = torch.as_tensor(thresholds, dtype=torch.float64)
        if t.dim() == 0:
            t = t.reshape(1, 1)
        elif t.dim() == 1:
            t = t.reshape(-1, 1)
        elif t.dim() != 2:
            raise ValueError(f"thresholds must be a number, a 1-D sequence or a 2-D [T, F] array, got shape {list(t.shape)}")
        if t.numel() == 0 or not torch.isfinite(t).all():
            raise ValueError("thresholds must be finite and non-empty")
        if t.shape[1] > 1 and num_features is not None and num_features != t.shape[1]:
            raise ValueError(f"num_features={num_features} disagrees with thresholds of shape {list(t.shape)}")
        if train_passthrough and t.shape[0] != 1:
            raise ValueError("train_passthrough needs exactly one threshold per feature "
                             f"(grey values replace the bits), got {t.shape[0]}")
        self.register_buffer("thresholds", t.to(torch.float32).to(device))
        self.train_passthrough = bool(train_passthrough)
        self.num_features = int(t.shape[1]) if t.shape[1] > 1 else (None if num_features is None else int(num_features))

    @property
    def num_thresholds(self) -> int:
        return int(self.thresholds.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f"Binarize expects a batch [batch, ...], got shape {list(x.shape)}")
        x = x.flatten(1)
        if self.num_features is not None and x.shape[1] != self.num_features:
            raise ValueError(f"Binarize expects {self.num_features} features per sample, got {x.shape[1]}")
        if self.training and self.train_passthrough:
            return x if x.is_floating_point() else x.to(torch.float32)
        dtype = x.dtype if x.is_floating_point() else torch.float32
        bits = x.to(torch.float64).unsqueeze(1) > self.thresholds.to(torch.float64)  # [batch, T, F]
        return bits.flatten(1).to(dtype)

    def encoder(self, num_features: int | None = None) -> InputEncoder:
        """The circuit's InputEncoder for this binariser (``num_features`` needed only for shared thresholds)."""
        f = self.num_features or num_features
        if f is None:
            raise ValueError("Binarize with shared thresholds does not know its number of features; "
                             "pass num_features (lowering infers it from the next LogicLayer)")
        thr = self.thresholds.detach().cpu().to(torch.float64).expand(self.num_thresholds, f)
        feature = np.tile(np.arange(f, dtype=np.int64), self.num_thresholds)
        return InputEncoder(feature, thr.reshape(-1).numpy(), f)

    def config(self) -> dict[str, Any]:
        """Constructor arguments as plain data (thresholds as nested lists)."""
        t = self.thresholds.detach().cpu()
        return {"thresholds": t[:, 0].tolist() if t.shape[1] == 1 else t.tolist(),
                "train_passthrough": self.train_passthrough, "num_features": self.num_features}

    def extra_repr(self) -> str:
        t = self.thresholds
        shown = f"{t[:, 0].tolist()}" if t.shape[1] == 1 else f"per-feature [{t.shape[0]}, {t.shape[1]}]"
        return f"thresholds={shown}, train_passthrough={self.train_passthrough}"


#: Alias for readers who know the term from tabular DLGN papers.
ThresholdEncoder = Binarize


@module_kind(Binarize, "binarize", role="encoder")
class BinarizeKind(ModuleKind):
    """Raw features ``[...] -> [T * F]`` bits; lowers to the circuit's :class:`lgc.ir.InputEncoder`."""

    def output_shape(self, m: Binarize, shape: Shape) -> Shape:
        features = math.prod(shape)
        if m.num_features is not None and m.num_features != features:
            raise ValueError(f"Binarize expects {m.num_features} features per sample, got {features} "
                             f"(shape {list(shape)})")
        return (m.num_thresholds * features,)

    def input_shape(self, m: Binarize) -> Shape | None:
        return None if m.num_features is None else (m.num_features,)

    def input_from_output(self, m: Binarize, shape: Shape) -> Shape:
        bits = math.prod(shape)
        if bits % m.num_thresholds:
            raise ValueError(f"the model reads {bits} bits, not a multiple of the Binarize's {m.num_thresholds} "
                             f"thresholds")
        return (bits // m.num_thresholds,)

    def encoder(self, m: Binarize, shape: Shape) -> InputEncoder:
        return m.encoder(math.prod(shape))

    def config(self, m: Binarize) -> dict[str, Any]:
        c = m.config()
        return {"thresholds": c["thresholds"], "train_passthrough": c["train_passthrough"]}

    def build(self, spec: Any, shape: Shape, ctx: BuildContext) -> Binarize:
        spec = check_keys(spec, ("thresholds", "train_passthrough", "num_features"), "binarize") \
            if isinstance(spec, Mapping) else {"thresholds": spec}
        return Binarize(spec.get("thresholds", 0.5), train_passthrough=bool(spec.get("train_passthrough", False)),
                        num_features=math.prod(shape), device=ctx.device)
