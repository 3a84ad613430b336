"""Schedules as functions of the step alone, so a resumed run continues them exactly."""
from __future__ import annotations

import math

from .config import LR_SCHEDULES, TrainConfig


def learning_rate_at(cfg: TrainConfig, step: int) -> float:
    """The learning rate of ``step``: ``cfg.learning_rate``, or cosine-decayed from it to 0 at
    ``cfg.num_iterations``. Raises ValueError for an unknown ``lr_schedule``."""
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {cfg.lr_schedule!r}")
    if cfg.lr_schedule == "constant":
        return cfg.learning_rate
    return cfg.learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / max(1, cfg.num_iterations))))


def annealed_temperature(cfg: TrainConfig, step: int) -> float:
    """The relaxation temperature at ``step``: ``cfg.temperature`` until ``anneal_from`` of the run,
    then geometric to ``anneal_to`` at the last step. Hardening the relaxed gates at the end of
    training lets the network adapt to the circuit it becomes (it narrows the train/eval gap)."""
    if cfg.anneal_to is None:
        return cfg.temperature
    frac = (step / max(1, cfg.num_iterations) - cfg.anneal_from) / max(1e-9, 1.0 - cfg.anneal_from)
    return cfg.temperature * (cfg.anneal_to / cfg.temperature) ** min(1.0, max(0.0, frac))
