"""Trainer hooks: small objects that experiments plug into :class:`lgc.training.Trainer`.

A hook overrides what it needs of :class:`Hook` (every method is a no-op): schedules act before a
step, an extra loss term adjusts the loss, callbacks see each evaluation or epoch, and model
selection may veto a checkpoint as the best. :func:`default_hooks` makes the hooks a config asks for
(learning-rate and temperature schedules, gate budget, distillation), so ``lgc train`` and an
experiment script run the same loop.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .config import TrainConfig
from .schedules import annealed_temperature, learning_rate_at

if TYPE_CHECKING:
    from .trainer import Trainer


class Hook:
    """Base class; the trainer calls every hook's methods in list order."""

    def on_fit_start(self, trainer: "Trainer") -> None:
        """Once, after the model, optimizer and data are ready (also on resume)."""

    def before_step(self, trainer: "Trainer", step: int) -> None:
        """Before training step ``step`` (0-based): schedules set the rate or temperature here."""

    def adjust_loss(self, trainer: "Trainer", loss: Any, logits: Any, batch: np.ndarray) -> Any:
        """The loss to minimise given the cross-entropy ``loss`` (scalar tensor), the model's
        ``logits`` [B, classes] and the batch's training-set indices ``batch`` (int64 [B])."""
        return loss

    def on_evaluation(self, trainer: "Trainer", record: dict[str, Any]) -> None:
        """After an evaluation; may add JSON-able fields to ``record`` (it goes to metrics.jsonl)."""

    def selectable(self, trainer: "Trainer", record: dict[str, Any]) -> bool:
        """Whether this evaluation's model may become ``best.pt`` (model selection)."""
        return True

    def on_epoch_end(self, trainer: "Trainer", epoch: int) -> None:
        """After the last step of epoch ``epoch`` (1-based count of finished epochs)."""


class LearningRateSchedule(Hook):
    """Sets Adam's rate to :func:`learning_rate_at` (cosine decay) before every step."""

    def before_step(self, trainer: "Trainer", step: int) -> None:
        for group in trainer.optimizer.param_groups:
            group["lr"] = learning_rate_at(trainer.cfg, step)


class TemperatureSchedule(Hook):
    """Anneals every logic layer's relaxation temperature (:func:`annealed_temperature`)."""

    def before_step(self, trainer: "Trainer", step: int) -> None:
        from ..frontend import set_relaxation
        set_relaxation(trainer.model, trainer.cfg.relaxation, annealed_temperature(trainer.cfg, step))


class GateBudget(Hook):
    """Model selection by size: a checkpoint may become best only when its network has at most
    ``max_gates`` gates after lowering and ``optimize(level=2)``. Adds ``gates_O2`` to each record
    (one lowering and O2 pass per evaluation: well under a second for MNIST-sized nets)."""

    def __init__(self, max_gates: int) -> None:
        self.max_gates = int(max_gates)

    def on_evaluation(self, trainer: "Trainer", record: dict[str, Any]) -> None:
        from ..api import lower, optimize
        was = trainer.model.training
        trainer.model.eval()
        record["gates_O2"] = int(optimize(lower(trainer.model), level=2).num_gates)
        trainer.model.train(was)

    def selectable(self, trainer: "Trainer", record: dict[str, Any]) -> bool:
        return record["gates_O2"] <= self.max_gates


class Distill(Hook):
    """Knowledge distillation (Hinton et al. 2015) from trained checkpoints:
    ``loss = (1 - weight) CE + weight T^2 KL(teacher_T || student_T)`` with the teachers' mean
    train-mode (relaxed) logits, computed once on the training set at the start."""

    def __init__(self, teachers: list[str], weight: float = 0.5, temperature: float = 2.0) -> None:
        self.teachers, self.weight, self.temperature = list(teachers), float(weight), float(temperature)
        self.soft_targets: Any = None

    def on_fit_start(self, trainer: "Trainer") -> None:
        import torch
        from ..frontend import load_checkpoint
        x = trainer.data.x_train
        total = np.zeros((len(x), trainer.data.num_classes), np.float32)
        for path in self.teachers:
            teacher = load_checkpoint(path, device=trainer.device).train()
            with torch.no_grad():
                for i in range(0, len(x), 4096):
                    xb = torch.from_numpy(np.ascontiguousarray(x[i:i + 4096], np.float32)).to(trainer.device)
                    total[i:i + 4096] += teacher(xb).float().cpu().numpy()
        self.soft_targets = torch.from_numpy(total / len(self.teachers))
        agree = float(np.mean(total.argmax(1) == trainer.data.y_train))
        trainer.log(f"distilling from {len(self.teachers)} teacher(s); their mean is right on {100 * agree:.2f}% "
                    "of the training images")

    def adjust_loss(self, trainer: "Trainer", loss: Any, logits: Any, batch: np.ndarray) -> Any:
        import torch.nn.functional as F
        t = self.temperature
        target = self.soft_targets[batch].to(logits.device)
        kd = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(target / t, 1), log_target=True,
                      reduction="batchmean")
        return (1 - self.weight) * loss + self.weight * t ** 2 * kd


def default_hooks(cfg: TrainConfig) -> list[Hook]:
    """The hooks ``cfg`` asks for, in the order the trainer runs them."""
    hooks: list[Hook] = []
    if cfg.lr_schedule != "constant":
        hooks.append(LearningRateSchedule())
    if cfg.anneal_to is not None:
        hooks.append(TemperatureSchedule())
    if cfg.distill.teachers:
        hooks.append(Distill(cfg.distill.teachers, cfg.distill.weight, cfg.distill.temperature))
    if cfg.gate_budget is not None:
        hooks.append(GateBudget(cfg.gate_budget))
    return hooks
