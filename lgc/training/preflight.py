"""Validate a run's options before any work, so a bad option fails in a second, not after training.

Checks the values (:func:`lgc.training.config.check_values`), the dataset name and files that must
exist (a CSV file, teacher and ``init_from`` checkpoints), the image binarisation, the compile target
(``--target`` with ``--compile``), the torch device, and the optional packages the run will need
(matplotlib for ``--plot``, tqdm for the progress bar). Data files are checked when the data is
loaded, which also happens before the first step."""
from __future__ import annotations

import importlib.util
import pathlib

from ..data import DATASETS
from .config import TrainConfig, check_values
from .models import IMAGE_SHAPES, image_binarization


def preflight(cfg: TrainConfig) -> None:
    """Raise ValueError (FileNotFoundError for a missing file) naming the first unusable option."""
    check_values(cfg)
    if cfg.dataset.startswith("csv:"):
        if not pathlib.Path(cfg.dataset[4:]).is_file():
            raise FileNotFoundError(f"--dataset {cfg.dataset}: no such file {cfg.dataset[4:]!r}")
    elif cfg.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {cfg.dataset!r}; known: {', '.join(DATASETS)}")
    if cfg.binarize and cfg.dataset in IMAGE_SHAPES and cfg.dataset != "digits":
        image_binarization(cfg.binarize)
    for name, path in [*(("--distill-from", p) for p in cfg.distill.teachers), ("--init-from", cfg.init_from)]:
        if path is not None and not pathlib.Path(path).is_file():
            raise FileNotFoundError(f"{name}: no such checkpoint {path!r}")
    if cfg.compile and not cfg.baseline:
        from ..backends import resolve_target
        resolve_target(cfg.target)   # ValueError: unknown target, or not available on this host
    if cfg.plot and importlib.util.find_spec("matplotlib") is None:
        raise ValueError("--plot needs matplotlib, which is not installed (pip install matplotlib)")
    if cfg.progress and importlib.util.find_spec("tqdm") is None:
        raise ValueError("the progress bar needs tqdm, which is not installed (pip install tqdm, or --no-progress)")
    _check_device(cfg.device)


def _check_device(device: str | None) -> None:
    if device is None:
        return
    import torch
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"--device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available here")
