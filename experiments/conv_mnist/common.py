"""What the conv MNIST diagnostics share: the images (through lgc.data), batched inference and
optimised gate counts."""
from __future__ import annotations

import pathlib

import numpy as np
import torch

import lgc
from lgc.data import load_dataset

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "out"


def load_mnist(crop: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train [60000, F], y_train, x_test [10000, F], y_test), grey values in [0, 1]; ``crop=4``: the
    20x20 centre (``mnist20x20``), as the fifth-round models read it. ``LGC_DATA_DIR`` as everywhere."""
    if crop not in (0, 4):
        raise SystemExit("--crop must be 0 (mnist) or 4 (mnist20x20)")
    data = load_dataset("mnist20x20" if crop else "mnist", download=False)
    return data.x_train, data.y_train, data.x_test, data.y_test


def predict(model: torch.nn.Module, x: np.ndarray | torch.Tensor, batch: int = 2000) -> torch.Tensor:
    """``model`` on ``x`` in batches, without autograd, in the model's current mode."""
    x = torch.as_tensor(x)
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])


def optimised_gates(model: torch.nn.Module) -> int:
    """Gates of the eval-mode model after lowering and ``lgc.optimize(level=2)``."""
    was = model.training
    model.eval()
    gates = int(lgc.optimize(lgc.lower(model), level=2).num_gates)
    model.train(was)
    return gates
