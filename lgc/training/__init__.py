"""Training as a library: the config, a trainer with hooks, run directories with resume, and the
compile-and-check step that ``lgc train`` and the experiments in ``experiments/`` share.

    from lgc.training import TrainConfig, ConvConfig, Trainer, GateBudget
    cfg = TrainConfig(dataset="mnist20x20", arch="conv", conv=ConvConfig(channels=12, padding=0))
    summary = Trainer(cfg, hooks=[GateBudget(27_000)]).fit()

Modules: :mod:`.config` (options, resume rules), :mod:`.options` (CLI generated from the config),
:mod:`.models`, :mod:`.trainer`, :mod:`.hooks`, :mod:`.schedules`, :mod:`.evaluation`,
:mod:`.rundir` (files, resume, safe loading), :mod:`.finish` (compile and check),
:mod:`.diagnostics` (the soft/hard discretisation gap), :mod:`.distributed`, :mod:`.preflight`.
Needs torch (imported when a run starts).
"""
from __future__ import annotations

from .config import MUTABLE_ON_RESUME, ConvConfig, DistillConfig, TrainConfig
from .diagnostics import discretisation_gap
from .evaluation import model_scores, predict_model
from .finish import CheckFailed, compile_and_check, finish
from .hooks import Distill, GateBudget, Hook, LearningRateSchedule, TemperatureSchedule, default_hooks
from .models import IMAGE_SHAPES, conv_model_config, image_shape, load_training_data, model_config
from .rundir import RunDir, default_run_dir, load_config, load_torch_file, read_metrics
from .schedules import annealed_temperature, learning_rate_at
from .trainer import Trainer, train

__all__ = ["CheckFailed", "ConvConfig", "Distill", "DistillConfig", "GateBudget", "Hook", "IMAGE_SHAPES",
           "LearningRateSchedule", "MUTABLE_ON_RESUME", "RunDir", "TemperatureSchedule", "TrainConfig", "Trainer",
           "annealed_temperature", "compile_and_check", "conv_model_config", "default_hooks", "discretisation_gap", "default_run_dir",
           "finish", "image_shape", "learning_rate_at", "load_config", "load_torch_file", "load_training_data",
           "model_config", "model_scores", "predict_model", "read_metrics", "train"]
