"""The end of a run: evaluate the best checkpoint, and with ``compile`` lower, optimise, build and
check that the compiled net predicts exactly what eval mode predicts (one binarisation rule per
dataset, so the two must be EQUAL; a mismatch raises :class:`CheckFailed`). Writes ``final.json``.
Cost: one eval-mode pass over the test set, plus lowering, O``opt_level`` and a build with ``compile``."""
from __future__ import annotations

import math
import pathlib
import time
from typing import Any, Callable

import numpy as np

from ..data import Dataset
from .config import TrainConfig
from .evaluation import predict_model
from .models import build_baseline_model
from .rundir import load_torch_file, read_metrics, write_json


class CheckFailed(RuntimeError):
    """A run finished but a check (compiled accuracy == eval-mode accuracy) failed."""


def load_run_model(run_dir: pathlib.Path, cfg: TrainConfig, data: Dataset, device: str, log: Callable[[str], None]):
    """The model of ``best.pt`` (``last.pt`` when no evaluation met the selection rule)."""
    path = run_dir / "best.pt"
    if not path.exists() and (run_dir / "last.pt").exists():
        log(f"no evaluation met the model selection rule (e.g. --gate-budget); using {run_dir / 'last.pt'}")
        path = run_dir / "last.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing (did the run reach its first evaluation?)")
    if cfg.baseline:
        blob = load_torch_file(path, device)
        if not isinstance(blob, dict) or not blob.get("baseline_mlp") or "state_dict" not in blob:
            raise ValueError(f"{path}: not a baseline MLP checkpoint written by lgc train --baseline")
        model = build_baseline_model(cfg, data, device)
        model.load_state_dict(blob["state_dict"])
        return model, path
    from ..frontend import load_checkpoint
    return load_checkpoint(path, device=device), path


def finish(run_dir: pathlib.Path, cfg: TrainConfig, data: Dataset, valid, *, device: str = "cpu",
           log: Callable[[str], None] = print, wall_seconds: float | None = None) -> dict[str, Any]:
    """Evaluate the best checkpoint on the test set (and validation set); with ``cfg.compile``
    :func:`compile_and_check` it. Writes and returns the summary (``final.json``); raises
    :class:`CheckFailed` when the compiled net's accuracy differs from eval mode."""
    model, path = load_run_model(run_dir, cfg, data, device, log)
    model.eval()
    summary: dict[str, Any] = {"run_dir": str(run_dir), "dataset": cfg.dataset, "checkpoint": str(path)}
    if wall_seconds is not None:
        summary["session_wall_seconds"] = round(wall_seconds, 1)  # this process only (a resumed run restarts it)
    metrics = read_metrics(run_dir, warn=log)
    if metrics:
        summary["train_seconds"] = metrics[-1].get("train_seconds")
        summary["steps"] = metrics[-1]["step"]
    summary["best_step"] = _checkpoint_step(path)
    pred = predict_model(model, data, data.x_test, train_mode=False, device=device, batch=cfg.eval_batch_size)
    summary["test_acc_eval"] = float(np.mean(pred == data.y_test))
    if valid is not None:
        summary["valid_acc_eval"] = float(np.mean(predict_model(model, data, valid[0], train_mode=False, device=device,
                                                                batch=cfg.eval_batch_size) == valid[1]))
    log(f"best checkpoint (step {summary['best_step']}): test accuracy {100 * summary['test_acc_eval']:.2f}% (eval mode)")
    if not cfg.baseline:
        summary.update(compile_and_check(model, data, cfg, pred, log=log) if cfg.compile else {"gates": _gates(model)})
    write_json(run_dir / "final.json", summary)
    if summary.get("compiled_matches") is False:
        raise CheckFailed(f"compiled accuracy {summary['compiled_test_acc']:.4%} != eval-mode accuracy "
                          f"{summary['test_acc_eval']:.4%} on the same binarised inputs")
    return summary


def _checkpoint_step(path: pathlib.Path) -> int | None:
    blob = load_torch_file(path)
    extra = blob.get("extra") if isinstance(blob, dict) else None
    step = (extra or {}).get("step", blob.get("step") if isinstance(blob, dict) else None)
    return int(step) if step is not None else None


def _gates(model) -> int:
    """Nominal gates: the FC layers' widths, or for conv models the lowered circuit's gate count."""
    if any(type(m).__name__ == "LogicConv2d" for m in model.modules()):
        from ..api import lower
        return int(lower(model).num_gates)
    return int(sum(getattr(m, "out_dim", 0) for m in model.modules() if type(m).__name__ == "LogicLayer"))


def compile_and_check(model, data: Dataset, cfg: TrainConfig, eval_pred: np.ndarray, *,
                      log: Callable[[str], None] = print) -> dict[str, Any]:
    """Lower the model, optimise at ``cfg.opt_level``, build ``cfg.target`` and compare the compiled
    net's test predictions (int64 [N]) with eval mode's ``eval_pred`` (same raw features, same encoder).
    Returns gate counts, seconds per stage, accuracies (fractions) and samples/s."""
    from ..api import lower, optimize
    from ..backends import build
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    circuit = lower(model)
    out["lower_seconds"] = round(time.perf_counter() - t0, 3)
    out["gates_before"] = circuit.num_gates
    t0 = time.perf_counter()
    small = optimize(circuit, level=cfg.opt_level) if cfg.opt_level else circuit
    out["optimize_seconds"] = round(time.perf_counter() - t0, 3)
    out["gates_after"] = small.num_gates
    out["opt_level"] = cfg.opt_level
    t0 = time.perf_counter()
    net = build(small, cfg.target)
    out["compile_seconds"] = round(time.perf_counter() - t0, 3)
    out["target"] = getattr(net, "target", cfg.target)
    x_test = data.x_test if small.input_encoder is not None else data.bits(data.x_test)
    compiled_pred = np.argmax(net(x_test), axis=1)
    out["compiled_test_acc"] = float(np.mean(compiled_pred == data.y_test))
    out["compiled_matches"] = bool(out["compiled_test_acc"] == float(np.mean(eval_pred == data.y_test)))
    out["compiled_predictions_equal"] = bool(np.array_equal(compiled_pred, eval_pred))
    out["compiled_samples_per_s"] = samples_per_second(net, data.bits(data.x_test))
    log(f"lowered {out['gates_before']} gates -> {out['gates_after']} after O{cfg.opt_level}; "
        f"compiled for {out['target']} in {out['compile_seconds']:.2f} s: test accuracy "
        f"{100 * out['compiled_test_acc']:.2f}% ({'equals' if out['compiled_matches'] else 'DIFFERS FROM'} eval mode), "
        f"{out['compiled_samples_per_s']:,.0f} samples/s")
    return out


def samples_per_second(net, bits: np.ndarray, min_seconds: float = 0.3, repeats: int = 3) -> float:
    """Throughput of ``net`` on bool input bits [N, inputs] (packing and readout included), the batch
    repeated to at least 65,536 samples (``lgc.backends.bench.measure_throughput``)."""
    from ..backends.bench import measure_throughput
    reps = max(1, int(math.ceil(65536 / max(len(bits), 1))))
    x = np.ascontiguousarray(np.concatenate([bits] * reps)) if reps > 1 else np.ascontiguousarray(bits)
    return measure_throughput(net, x, repeats=repeats, min_seconds=min_seconds)
