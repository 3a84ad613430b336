"""Tabular datasets: scikit-learn's bundled sets (offline) and CSV files with declared binarisation.

Binarisation is declared as ``quantile:N`` (N per-feature quantile thresholds of the training
split), ``uniform:N`` (N evenly spaced thresholds between the training min and max) or
``threshold:T`` (one bit per feature, x > T). Thresholds come from the training split only.
Non-numeric CSV columns are one-hot encoded (one 0/1 raw feature per category, threshold 0.5 in
every threshold plane, so a category's bit repeats T times).
"""
from __future__ import annotations

import csv
import os

import numpy as np

from .dataset import Dataset, fixed_threshold, quantile_thresholds, uniform_thresholds

#: scikit-learn loaders and the binarisation each uses by default.
SKLEARN_SETS = {
    "digits": ("load_digits", "quantile:3"),
    "breast-cancer": ("load_breast_cancer", "quantile:8"),
    "iris": ("load_iris", "quantile:8"),
}


def make_thresholds(x_train: np.ndarray, binarize: str) -> np.ndarray:
    """Parse a declared binarisation (see the module docstring) into thresholds [T, F] or [1, 1]."""
    kind, _, arg = str(binarize).partition(":")
    if kind in ("quantile", "uniform"):
        if not arg.isdigit() or int(arg) < 1:
            raise ValueError(f"binarisation {binarize!r}: {kind} needs a positive integer, e.g. {kind}:4")
        fn = quantile_thresholds if kind == "quantile" else uniform_thresholds
        return fn(x_train, int(arg))
    if kind == "threshold" and (fixed := fixed_threshold(arg)) is not None:
        return fixed
    raise ValueError(f"unknown binarisation {binarize!r}; use quantile:N, uniform:N or threshold:T")


def split_train_test(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int):
    """A seeded, stratified split (every class keeps its share on both sides)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.extend(idx[: int(round(test_fraction * idx.size))].tolist())
    mask = np.zeros(len(y), bool)
    mask[test] = True
    return x[~mask], y[~mask], x[mask], y[mask]


def load_sklearn(name: str, *, binarize: str | None = None, test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """One of scikit-learn's bundled sets (``digits``, ``breast-cancer``, ``iris``), binarised by
    per-feature thresholds fitted on the training split. Needs scikit-learn, no network."""
    if name not in SKLEARN_SETS:
        raise ValueError(f"unknown scikit-learn set {name!r}; known: {', '.join(SKLEARN_SETS)}")
    try:
        import sklearn.datasets
    except ImportError as e:
        raise ValueError(f"dataset {name!r} needs scikit-learn (pip install scikit-learn)") from e
    loader, default = SKLEARN_SETS[name]
    bunch = getattr(sklearn.datasets, loader)()
    x, y = np.asarray(bunch.data, np.float32), np.asarray(bunch.target, np.int64)
    x_tr, y_tr, x_te, y_te = split_train_test(x, y, test_fraction, seed)
    spec = binarize or default
    return Dataset(name=name, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
                   thresholds=make_thresholds(x_tr, spec), num_classes=int(y.max()) + 1,
                   class_names=[str(c) for c in bunch.target_names],
                   description=f"scikit-learn {loader}, binarised with {spec} thresholds from the training split")


def load_csv(path: str | os.PathLike, *, label: str | int = -1, binarize: str = "quantile:4",
             test_fraction: float = 0.2, seed: int = 0, delimiter: str = ",") -> Dataset:
    """A CSV file with a header row: ``label`` names the class column (name or index, default
    last); numeric columns are thresholded as ``binarize`` declares; text columns are one-hot."""
    path = os.fspath(path)
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter=delimiter))
    rows = [r for r in rows if r and any(cell.strip() for cell in r)]
    if len(rows) < 3:
        raise ValueError(f"{path}: a CSV dataset needs a header row and at least two data rows")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise ValueError(f"{path}: line {i + 2} has {len(r)} fields, the header has {len(header)}")
    if isinstance(label, str) and not label.lstrip("-").isdigit():
        if label not in header:
            raise ValueError(f"{path}: no column named {label!r}; columns: {', '.join(header)}")
        label_col = header.index(label)
    else:
        label_col = int(label) % len(header)
    cols = list(zip(*body))
    class_names = sorted({c.strip() for c in cols[label_col]})
    lookup = {c: i for i, c in enumerate(class_names)}
    y = np.array([lookup[c.strip()] for c in cols[label_col]], np.int64)
    features, feature_names = [], []
    one_hot = np.zeros(0, bool)
    for j, col in enumerate(cols):
        if j == label_col:
            continue
        values = [c.strip() for c in col]
        try:
            features.append(np.array([float(v) for v in values], np.float64))
            feature_names.append(header[j])
            one_hot = np.append(one_hot, False)
        except ValueError:
            for cat in sorted(set(values)):
                features.append(np.array([v == cat for v in values], np.float64))
                feature_names.append(f"{header[j]}={cat}")
                one_hot = np.append(one_hot, True)
    if not features:
        raise ValueError(f"{path}: no feature columns besides the label")
    x = np.stack(features, axis=1)
    if not np.isfinite(x).all():
        raise ValueError(f"{path}: numeric columns hold NaN or infinite values")
    x_tr, y_tr, x_te, y_te = split_train_test(x, y, test_fraction, seed)
    declared = make_thresholds(x_tr, binarize)
    thresholds = np.broadcast_to(declared, (declared.shape[0], x.shape[1])).copy()
    thresholds[:, one_hot] = 0.5   # one-hot columns: bit = (value > 0.5), repeated in every plane
    return Dataset(name=f"csv:{os.path.basename(path)}", x_train=x_tr.astype(np.float32), y_train=y_tr,
                   x_test=x_te.astype(np.float32), y_test=y_te, thresholds=thresholds, num_classes=len(class_names),
                   class_names=class_names,
                   description=f"{path}: {len(feature_names)} features, numeric ones binarised with {binarize}")
