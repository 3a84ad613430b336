"""The ``Dataset`` every loader returns: raw features, labels and ONE binarisation rule.

The rule is a threshold array ``[T, F]`` (or ``[T, 1]``, shared by all F features): bit
``t * F + f = x[:, f] > thresholds[t, f]``, one plane of F bits per threshold, exactly the layout
of :class:`lgc.frontend.Binarize`, which the model starts with, and of the circuit's
:class:`lgc.ir.InputEncoder`. Thresholds are float32 values (compared in float64, as Binarize
does), so training, evaluation, lowering and compiled inference all see the same bits. A dataset may train on raw values instead of bits
(``train_on_raw``: MNIST trains on grey values in [0, 1], as difflogic does); that needs one bit
per feature in feature order, and evaluation still uses the encoder's bits.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..ir import InputEncoder


@dataclasses.dataclass
class Dataset:
    """A train/test split of raw features (float32 [N, F]) and labels (int64 [N])."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    thresholds: np.ndarray
    num_classes: int
    train_on_raw: bool = False
    class_names: list[str] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        t = np.asarray(self.thresholds, dtype=np.float32)
        t = t.reshape(1, 1) if t.ndim == 0 else (t.reshape(-1, 1) if t.ndim == 1 else t)
        f = self.x_train.shape[1] if self.x_train.ndim == 2 else -1
        if t.ndim != 2 or t.size == 0 or t.shape[1] not in (1, f) or not np.isfinite(t).all():
            raise ValueError(f"{self.name}: thresholds must be finite [T, {f}] or [T, 1], got {list(t.shape)}")
        self.thresholds = t
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 2 or x.shape[1] != f:
                raise ValueError(f"{self.name}: x_{split} must be [N, {f}], got {list(x.shape)}")
            if y.shape != (x.shape[0],):
                raise ValueError(f"{self.name}: y_{split} must have {x.shape[0]} labels, got {list(y.shape)}")
        if self.train_on_raw and t.shape[0] != 1:
            raise ValueError(f"{self.name}: training on raw values needs one threshold per feature")

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def num_thresholds(self) -> int:
        return int(self.thresholds.shape[0])

    @property
    def num_inputs(self) -> int:
        """Input bits of the logic network (thresholds x features)."""
        return self.num_thresholds * self.num_features

    @property
    def encoder(self) -> InputEncoder:
        """The binarisation as the circuit's InputEncoder (bit t*F + f reads feature f)."""
        f, t = self.num_features, self.num_thresholds
        thr = np.broadcast_to(self.thresholds.astype(np.float64), (t, f)).reshape(-1)
        return InputEncoder(np.tile(np.arange(f), t), thr, f)

    def binarizer_config(self) -> dict:
        """The ``binarize`` entry of a frontend model config (``lgc.frontend.build_model``)."""
        t = self.thresholds
        return {"thresholds": t[:, 0].tolist() if t.shape[1] == 1 else t.tolist(), "train_passthrough": self.train_on_raw}

    def bits(self, x: np.ndarray) -> np.ndarray:
        """Raw features -> bool input bits [N, num_inputs]: the dataset's one binarisation rule."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"{self.name}: expected raw features [N, {self.num_features}], got {list(x.shape)}")
        return self.encoder.encode(x)   # the one rule: the circuit's InputEncoder (x > t, exact in float64)

    def split_validation(self, fraction: float, seed: int = 0) -> tuple["Dataset", tuple[np.ndarray, np.ndarray] | None]:
        """Hold out ``fraction`` of the training set (a seeded random permutation) for validation.

        Returns (dataset with the smaller training set, (x_valid, y_valid) or None)."""
        if not 0 <= fraction < 1:
            raise ValueError(f"validation fraction must lie in [0, 1), got {fraction}")
        n = len(self.y_train)
        n_valid = int(round(fraction * n))
        if n_valid == 0:
            return self, None
        perm = np.random.default_rng(seed).permutation(n)
        valid, train = perm[:n_valid], np.sort(perm[n_valid:])
        return (dataclasses.replace(self, x_train=self.x_train[train], y_train=self.y_train[train]),
                (self.x_train[valid], self.y_train[valid]))

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}: {len(self.y_train)} train / {len(self.y_test)} test, "
                f"{self.num_features} features x {self.num_thresholds} thresholds = {self.num_inputs} bits, "
                f"{self.num_classes} classes{', trains on raw values' if self.train_on_raw else ''})")


def level_thresholds(levels: int) -> np.ndarray:
    """difflogic's image thresholds (i+1)/(levels+1), shared by every feature: [levels, 1]."""
    return ((np.arange(levels) + 1) / (levels + 1)).reshape(-1, 1)


def fixed_threshold(text: str) -> np.ndarray | None:
    """The thresholds ``[1, 1]`` of a ``threshold:T`` binarisation's ``T`` (one bit, x > T), or None
    when ``text`` is not a finite number."""
    try:
        value = float(text)
    except ValueError:
        return None
    return np.array([[value]]) if np.isfinite(value) else None


def quantile_thresholds(x_train: np.ndarray, levels: int) -> np.ndarray:
    """Per-feature thresholds at the training split's (i+1)/(levels+1) quantiles: [levels, F].

    A feature with few distinct values repeats thresholds (its duplicate bits are harmless: the
    wiring reads them or not, and passes merge what reads them alike)."""
    x_train = np.asarray(x_train, dtype=np.float64)
    qs = (np.arange(levels) + 1) / (levels + 1)
    return np.quantile(x_train, qs, axis=0)


def uniform_thresholds(x_train: np.ndarray, levels: int) -> np.ndarray:
    """Per-feature thresholds evenly spaced between the training split's min and max: [levels, F]."""
    x_train = np.asarray(x_train, dtype=np.float64)
    lo, hi = x_train.min(axis=0), x_train.max(axis=0)
    frac = ((np.arange(levels) + 1) / (levels + 1)).reshape(-1, 1)
    return lo + (hi - lo) * frac
