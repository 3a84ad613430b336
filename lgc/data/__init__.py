"""Datasets for training and evaluating logic gate networks, each with ONE binarisation rule.

``load_dataset(name, data_dir=None, download=True)`` returns a :class:`Dataset`: raw features,
labels and one threshold array (the binarisation used for evaluation, lowering and
compiled inference alike). Names: ``mnist``, ``mnist20x20``, ``fashion-mnist``,
``cifar-10-3-thresholds``, ``cifar-10-31-thresholds``, ``digits``, ``breast-cancer``, ``iris``,
and ``csv:PATH`` (see :func:`load_csv`). Files are looked up in ``data_dir``, ``$LGC_DATA_DIR``
or the user cache dir and downloaded only when missing (:mod:`lgc.data.files`).
Needs numpy only (scikit-learn for its bundled sets).
"""
from __future__ import annotations

import os
from typing import Any

from .dataset import Dataset, fixed_threshold, level_thresholds, quantile_thresholds, uniform_thresholds
from .files import MissingDataError, data_root
from .images import load_cifar10, load_mnist_like, read_idx
from .tabular import SKLEARN_SETS, load_csv, load_sklearn, make_thresholds

#: dataset name -> one-line description (``lgc train --help`` shows these).
DATASETS = {
    "mnist": "MNIST 28x28, trains on grey values, evaluates/compiles on x > 0.5 (784 inputs)",
    "mnist20x20": "MNIST with the 4-pixel border cropped (400 inputs), as difflogic",
    "fashion-mnist": "Fashion-MNIST 28x28, same rule as mnist (784 inputs)",
    "cifar-10-3-thresholds": "CIFAR-10, 3 thresholds per channel value (9216 inputs)",
    "cifar-10-31-thresholds": "CIFAR-10, 31 thresholds per channel value (95232 inputs)",
    "digits": "scikit-learn 8x8 digits, 3 quantile thresholds per pixel (offline)",
    "breast-cancer": "scikit-learn breast cancer, 8 quantile thresholds per feature (offline)",
    "iris": "scikit-learn iris, 8 quantile thresholds per feature (offline)",
    "csv:PATH": "a CSV file with a header; see --csv-label / --binarize",
}


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = True,
                 **options: Any) -> Dataset:
    """Load a dataset by name (see ``DATASETS``). ``options`` go to the sklearn/CSV loaders
    (``binarize``, ``label``, ``test_fraction``, ``seed``)."""
    if name in ("mnist", "mnist20x20", "fashion-mnist"):
        return load_mnist_like(name, data_dir, download=download, crop=4 if name == "mnist20x20" else 0)
    if name in ("cifar-10-3-thresholds", "cifar-10-31-thresholds"):
        return load_cifar10(3 if name == "cifar-10-3-thresholds" else 31, data_dir, download=download)
    if name in SKLEARN_SETS:
        return load_sklearn(name, **{k: v for k, v in options.items() if k in ("binarize", "test_fraction", "seed")})
    if name.startswith("csv:"):
        return load_csv(name[4:], **options)
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


__all__ = ["DATASETS", "Dataset", "MissingDataError", "SKLEARN_SETS", "data_root", "fixed_threshold", "level_thresholds",
           "load_cifar10", "load_csv", "load_dataset", "load_mnist_like", "load_sklearn", "make_thresholds",
           "quantile_thresholds", "read_idx", "uniform_thresholds"]
