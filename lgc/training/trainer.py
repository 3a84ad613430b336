"""The training loop: difflogic's ``main.py`` as a small class with hooks.

``Trainer(cfg, hooks=[...]).fit()`` validates the options (:mod:`.preflight`), loads the data,
builds the model (:mod:`.models`), opens or resumes the run directory (:mod:`.rundir`), trains with
Adam and cross-entropy, evaluates and checkpoints every ``eval_freq`` steps (best by validation
accuracy among the checkpoints the hooks allow; without a validation set, the latest), and ends
with :func:`.finish.finish`. Hooks (:mod:`.hooks`) add loss terms, schedules, model selection and
callbacks; the config's own (cosine rate, annealing, gate budget, distillation) come first.
Batches come from a seeded ``DistributedSampler`` per epoch, so a resumed run sees the same batch
sequence as an uninterrupted one. Cost per step: one forward and backward of the logic layers (on the
CPU, with Adam, as one fused call where the model allows it: :mod:`lgc.frontend.fused_step`).
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

import numpy as np

from .._atomic import staged_path
from .config import TrainConfig
from .distributed import init_distributed, shutdown
from .evaluation import evaluate, format_record
from .finish import finish
from .hooks import Hook, default_hooks
from .models import build_baseline_model, build_logic_model, load_training_data
from .preflight import preflight
from .rundir import RunDir, default_run_dir, read_metrics


class Trainer:
    """One run of ``cfg``. ``hooks`` run after the config's own (``use_config_hooks=False`` drops those)."""

    def __init__(self, cfg: TrainConfig, hooks: list[Hook] | None = None, *, log: Callable[[str], None] = print,
                 use_config_hooks: bool = True) -> None:
        self.cfg, self.log = cfg, log
        self.hooks = (default_hooks(cfg) if use_config_hooks else []) + list(hooks or [])
        self.step = 0
        self.best: dict[str, Any] = {"valid_acc": -1.0, "step": None}
        self.losses: list[float] = []
        self.train_seconds = 0.0
        self.bar = None
        self.saved_step: int | None = None   # the step of the last complete checkpoint

    def fit(self) -> dict[str, Any]:
        """Train, evaluate, checkpoint, finish; returns the summary (``final.json``; ``{}`` on ranks > 0).
        Raises ValueError/FileNotFoundError for bad options before any training, and
        :class:`~lgc.training.finish.CheckFailed` when the compiled net differs from eval mode."""
        preflight(self.cfg)
        self._setup()
        t_start = time.perf_counter()
        try:
            self._loop()
        except KeyboardInterrupt:
            if self.dist.main:
                self.log(f"interrupted at step {self.step}; " + (
                    f"continue from step {self.saved_step} with --resume --out {self.run.path}"
                    if self.saved_step is not None else f"no checkpoint yet: {self.run.path} will start over"))
            raise
        finally:
            if self.bar is not None:
                self.bar.close()
        shutdown(self.dist)
        if not self.dist.main:
            return {}
        return finish(self.run.path, self.cfg, self.data, self.valid, device=self.device, log=self.log,
                      wall_seconds=time.perf_counter() - t_start)

    # ------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        import torch
        cfg = self.cfg
        if cfg.threads is not None:
            from lgc.frontend import kernels
            kernels.set_num_threads(cfg.threads)  # the fused CPU kernels' own pool
            # beside the fused kernels torch's OpenMP threads only spin against that pool for the same
            # cores (benchmarks/RESULTS.md, Training): torch's small per-step ops stay on this thread
            fused_cpu = cfg.implementation in ("auto", "cpu") and not (cfg.device or "").startswith("cuda")
            torch.set_num_threads(1 if fused_cpu else cfg.threads)
        self.dist, self.device = init_distributed(cfg.device)
        self.run = RunDir(cfg.out or default_run_dir(cfg), log=self.log)
        self.data, self.valid = load_training_data(cfg)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.model = self._build_model()
        self.optimizer = _adam(self.model.parameters(), cfg.learning_rate)
        resume = self.run.start(cfg) if self.dist.main else (cfg.resume and self.run.has_checkpoint)
        if resume:
            self._load_state()
        if self.dist.main:
            self.log(f"run directory: {self.run.path} ({f'resuming at step {self.step}' if resume else 'new run'})")
        self.train_model = self.model
        if self.dist.world > 1:
            self.train_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.dist.local_rank] if self.device.startswith("cuda") else None)
        self._setup_batches()
        # forward, loss, backward and Adam in one fused CPU call where the model and optimiser allow it
        # (lgc.frontend.fused_step; otherwise the same step, generic); not when a hook adjusts the loss
        # or gradients are averaged across processes
        self.fused_step = None
        if not cfg.baseline and self.dist.world == 1 and not any(
                type(h).adjust_loss is not Hook.adjust_loss for h in self.hooks):
            from lgc.frontend.fused_step import FusedTrainStep
            self.fused_step = FusedTrainStep(self.model, self.optimizer)
        self.bar = self._progress_bar()
        for hook in self.hooks:
            hook.on_fit_start(self)

    def _build_model(self):
        cfg = self.cfg
        model = (build_baseline_model if cfg.baseline else build_logic_model)(cfg, self.data, self.device)
        if not cfg.baseline:
            from ..frontend import set_relaxation
            set_relaxation(model, cfg.relaxation, cfg.temperature)
        if cfg.init_from:
            from ..frontend import read_checkpoint
            try:
                model.load_state_dict(read_checkpoint(cfg.init_from)["state_dict"])
            except RuntimeError as e:
                raise ValueError(f"--init-from {cfg.init_from}: not this run's architecture ({e})") from None
        return model

    def _load_state(self) -> None:
        state = self.run.load_state(self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.best = int(state["step"]), dict(state["best"])
        self.saved_step = self.step
        prior = [m for m in read_metrics(self.run.path, warn=self.log) if m["step"] == self.step]
        self.train_seconds = float(state.get("train_seconds", prior[-1]["train_seconds"] if prior else 0.0))

    def _setup_batches(self) -> None:
        from torch.utils.data.distributed import DistributedSampler
        n_train, per_step = len(self.data.y_train), self.cfg.batch_size * self.dist.world
        if n_train < per_step:
            raise ValueError(f"{n_train} training samples are fewer than one batch of {per_step}")
        self.sampler = DistributedSampler(range(n_train), num_replicas=self.dist.world, rank=self.dist.rank,
                                          shuffle=True, seed=self.cfg.seed, drop_last=True)
        self.steps_per_epoch = len(self.sampler) // self.cfg.batch_size
        self._epoch: tuple[int, np.ndarray] | None = None

    def batch_indices(self, step: int) -> np.ndarray:
        """The training-set indices (int64 [batch_size]) of ``step`` for this process."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            self.sampler.set_epoch(epoch)
            self._epoch = (epoch, np.fromiter(iter(self.sampler), np.int64))
        return self._epoch[1][pos * self.cfg.batch_size:(pos + 1) * self.cfg.batch_size]

    def _progress_bar(self):
        if not (self.cfg.progress and self.dist.main):
            return None
        from tqdm import tqdm
        return tqdm(total=self.cfg.num_iterations, initial=min(self.step, self.cfg.num_iterations),
                    desc=f"train {self.cfg.dataset}", unit="step", dynamic_ncols=True, file=sys.stderr,
                    mininterval=0.5 if sys.stderr.isatty() else 60)

    # ------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        cfg = self.cfg
        while self.step < cfg.num_iterations:
            self._train_step()
            if self.step % self.steps_per_epoch == 0:
                for hook in self.hooks:
                    hook.on_epoch_end(self, self.step // self.steps_per_epoch)
            if self.dist.main and (self.step % cfg.eval_freq == 0 or self.step == cfg.num_iterations):
                self._checkpoint()
        if self.dist.main and not self.run.has_checkpoint:
            self._checkpoint()   # -ni 0: the untrained network, so the run is complete and finishes

    def _train_step(self) -> None:
        import torch
        idx = self.batch_indices(self.step)
        xb = torch.from_numpy(self.data.x_train[idx]).to(self.device)
        yb = torch.from_numpy(self.data.y_train[idx]).to(self.device)
        t0 = time.perf_counter()
        for hook in self.hooks:
            hook.before_step(self, self.step)
        self.train_model.train()
        if self.fused_step is not None:
            loss = self.fused_step(xb, yb)
        else:
            logits = self.train_model(xb)
            loss = torch.nn.functional.cross_entropy(logits, yb)
            for hook in self.hooks:
                loss = hook.adjust_loss(self, loss, logits, idx)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        self.train_seconds += time.perf_counter() - t0
        self.losses.append(float(loss.detach()))
        self.step += 1
        if self.bar is not None:
            self.bar.update(1)
            if self.step % 10 == 0:
                self.bar.set_postfix(loss=f"{np.mean(self.losses[-50:]):.4f}", refresh=False)

    def _checkpoint(self) -> None:
        """Evaluate, then write metrics, last.pt, best.pt and finally state.pt (the completeness marker)."""
        rec = evaluate(self.model, self.data, self.valid, device=self.device, step=self.step, losses=self.losses,
                       train_seconds=self.train_seconds, batch=self.cfg.eval_batch_size)
        for hook in self.hooks:
            hook.on_evaluation(self, rec)
        self.losses = []
        self.run.append_metrics(rec)
        self._save_model("last.pt")
        selectable = all(hook.selectable(self, rec) for hook in self.hooks)
        if selectable and (self.valid is None or rec["valid_acc_eval"] > self.best["valid_acc"]):
            self.best = {"valid_acc": float(rec.get("valid_acc_eval", -1.0)), "step": self.step}
            self._save_model("best.pt")
        self.run.save_state({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                             "step": self.step, "best": self.best, "train_seconds": self.train_seconds})
        self.saved_step = self.step
        (self.bar.write if self.bar is not None else self.log)(format_record(rec))

    def _save_model(self, name: str) -> None:
        path, extra = self.run.file(name), {"step": self.step}
        if self.cfg.baseline:
            import torch
            with staged_path(path) as staged:
                torch.save({"baseline_mlp": True, "state_dict": self.model.state_dict(),
                            "config": self.cfg.to_json(), **extra}, staged)
        else:
            from ..frontend import save_checkpoint
            save_checkpoint(self.model, path, extra=extra)


def train(cfg: TrainConfig, *, log: Callable[[str], None] = print, hooks: list[Hook] | None = None) -> dict[str, Any]:
    """Run one experiment: ``Trainer(cfg, hooks, log=log).fit()``."""
    return Trainer(cfg, hooks, log=log).fit()


def _adam(params: Any, lr: float) -> Any:
    """Adam, fused into one pass over the logits and both moments: for CPU parameters
    ``lgc.frontend.optim.Adam`` (on the fused kernels' thread pool, so it scales with ``--threads``
    while torch's threads stay at one), elsewhere torch's fused Adam where this torch has it. The
    state_dict is plain Adam's either way, so runs resume across all three."""
    import torch
    params = list(params)
    try:
        if params and all(p.device.type == "cpu" for p in params):
            from lgc.frontend.optim import Adam
            return Adam(params, lr=lr, fused=True)
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # an older torch, or a device without the fused kernel
        return torch.optim.Adam(params, lr=lr)
