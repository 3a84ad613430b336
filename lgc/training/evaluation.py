"""Accuracy of a PyTorch model during training: eval mode (the circuit) and train mode (relaxed).

Cost: one evaluation runs the model over a 10,000-image training subset, the validation set and
the test set (train and eval mode for the last two)."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..data import Dataset


def predict_model(model, data: Dataset, x: np.ndarray, *, train_mode: bool, device: str, batch: int = 4096) -> np.ndarray:
    """Class predictions int64 [N] of the PyTorch model on raw features ``x`` [N, F]. ``train_mode=False``:
    the discrete network, whose binariser applies the dataset's rule. ``train_mode=True``: difflogic's
    train-mode accuracy, soft gates on the binarised inputs (a model that trains on raw values gets
    the bits fed as its raw values, as difflogic feeds ``x.round()``)."""
    import torch
    was = model.training
    model.train(train_mode)
    feed = data.bits(x).astype(np.float32) if (train_mode and data.train_on_raw) else np.ascontiguousarray(x, np.float32)
    out = []
    with torch.no_grad():
        for i in range(0, len(feed), batch):
            out.append(model(torch.from_numpy(feed[i:i + batch]).to(device)).argmax(-1).cpu().numpy())
    model.train(was)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def model_scores(model, x: np.ndarray, device: str, batch: int = 4096) -> np.ndarray:
    """Eval-mode logits of the model on raw features, as float64 [N, k]."""
    import torch
    was = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], np.float32)).to(device))
                       .double().cpu().numpy())
    model.train(was)
    return np.concatenate(out)


def evaluate(model, data: Dataset, valid, *, device: str, step: int, losses: list[float], train_seconds: float,
             batch: int = 4096) -> dict[str, Any]:
    """One metrics record: mean loss since the last evaluation, accuracies (fractions) on a seeded
    10,000-sample training subset (eval mode), the validation and test sets (both modes), timing."""
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"step": step, "loss": float(np.mean(losses)) if losses else None,
                           "train_seconds": round(train_seconds, 3)}
    sub = np.random.default_rng(step).choice(len(data.y_train), size=min(10_000, len(data.y_train)), replace=False)

    def acc(x: np.ndarray, y: np.ndarray, train_mode: bool) -> float:
        return float(np.mean(predict_model(model, data, x, train_mode=train_mode, device=device, batch=batch) == y))

    rec["train_acc_eval"] = acc(data.x_train[sub], data.y_train[sub], False)
    if valid is not None:
        rec["valid_acc_train"] = acc(*valid, True)
        rec["valid_acc_eval"] = acc(*valid, False)
    rec["test_acc_train"] = acc(data.x_test, data.y_test, True)
    rec["test_acc_eval"] = acc(data.x_test, data.y_test, False)
    rec["eval_seconds"] = round(time.perf_counter() - t0, 3)
    rec["time"] = time.time()
    return rec


def format_record(rec: dict[str, Any]) -> str:
    """One log line for a metrics record."""
    parts = [f"step {rec['step']}"]
    if rec.get("loss") is not None:
        parts.append(f"loss {rec['loss']:.4f}")
    for key in ("train_acc_eval", "valid_acc_train", "valid_acc_eval", "test_acc_train", "test_acc_eval"):
        if key in rec:
            parts.append(f"{key} {100 * rec[key]:.2f}%")
    if "gates_O2" in rec:
        parts.append(f"gates_O2 {rec['gates_O2']}")
    return "  ".join(parts)
