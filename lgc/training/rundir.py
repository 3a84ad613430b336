"""A training run's directory: its files, how they are written, and how a run is resumed.

- ``config.json``   the run's options (:class:`TrainConfig`, nested); updated when a resume changes one;
- ``resume.jsonl``  one record per resume that changed options: step, time, ``{option: [old, new]}``;
- ``metrics.jsonl`` one JSON object per evaluation, appended; a torn LAST line (a kill or a full disk
  mid-append) is ignored with a warning and cut off on resume; a bad line elsewhere is an error
  naming the file and line;
- ``last.pt`` / ``best.pt`` model checkpoints (``lgc.frontend.save_checkpoint``);
- ``state.pt``      optimizer state, step and best-so-far. Written last, atomically (temp file +
  rename), so it marks a complete checkpoint: a directory without it holds no resumable run and
  is started over (by ``--resume`` too) — what a kill during the first checkpoint, Ctrl-C before
  the first evaluation, or a crash at start leave;
- ``final.json``    the summary of :func:`lgc.training.finish.finish`.

Every torch file is read with ``torch.load(weights_only=True)``: a file holding anything but
tensors and plain data is refused (:func:`load_torch_file`), never unpickled.
"""
from __future__ import annotations

import json
import os
import pathlib
import time
import warnings
from typing import Any, Callable

import numpy as np

from .._atomic import staged_path, write_atomic
from .config import MUTABLE_ON_RESUME, TrainConfig, resume_changes

#: what a run writes; files an interrupted start left behind are removed when it starts over
RUN_FILES = ("config.json", "metrics.jsonl", "last.pt", "best.pt", "state.pt", "final.json", "resume.jsonl")


def write_json(path: pathlib.Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (temp file + rename)."""
    write_atomic(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_torch_file(path: str | os.PathLike, device: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors, dicts, lists, numbers and strings only.
    Raises ValueError (naming the file) for anything else, e.g. a pickled object that would run code."""
    import pickle
    import torch
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ImportError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{os.fspath(path)}: refused: not a file of tensors and plain data as lgc writes them "
                         f"({first})") from None


def read_metrics(run_dir: str | os.PathLike, *, warn: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The run's ``metrics.jsonl`` records, the latest per step, in step order (``[]`` when none).

    A torn last line is left out (with a warning); ValueError names the file and line of a bad line
    anywhere else."""
    path = pathlib.Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    lines = path.read_text(errors="replace").split("\n")
    recs = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
                raise ValueError("not a record with an integer 'step'")
        except ValueError as e:
            if all(not rest.strip() for rest in lines[i + 1:]):
                (warn or (lambda m: warnings.warn(m, stacklevel=2)))(
                    f"{path}: line {i + 1} is incomplete (a run killed mid-write?); ignoring it")
                break
            raise ValueError(f"{path}: line {i + 1} is not a metrics record: {e}") from None
        recs.append(rec)
    by_step = {r["step"]: r for r in recs}   # a resumed run may repeat steps after its last saved state
    return [by_step[s] for s in sorted(by_step)]


def load_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The :class:`TrainConfig` of a run directory; FileNotFoundError when it is not one."""
    path = pathlib.Path(run_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: not an lgc run directory")
    try:
        return TrainConfig.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: not a readable run config ({e})") from None


def default_run_dir(cfg: TrainConfig) -> pathlib.Path:
    """``runs/<dataset>-<kind>-k<k>-l<l>-s<seed>``."""
    kind = "baseline" if cfg.baseline else ("logic" if cfg.arch == "fc" else f"conv{cfg.conv.channels}x{cfg.conv.blocks}")
    name = cfg.dataset.replace(":", "_").replace("/", "_")
    return pathlib.Path("runs") / f"{name}-{kind}-k{cfg.num_neurons}-l{cfg.num_layers}-s{cfg.seed}"


class RunDir:
    """The files of one run (see the module docstring); ``log`` receives the messages it prints."""

    def __init__(self, path: str | os.PathLike, log: Callable[[str], None] = print) -> None:
        self.path = pathlib.Path(path)
        self.log = log

    def file(self, name: str) -> pathlib.Path:
        return self.path / name

    @property
    def has_checkpoint(self) -> bool:
        return self.file("state.pt").exists()

    def start(self, cfg: TrainConfig) -> bool:
        """Open the directory for ``cfg``; returns True to resume from ``state.pt``, False to start at step 0.

        Raises ValueError for a finished or checkpointed run without ``cfg.resume``, or a resume
        that changes an option outside :data:`MUTABLE_ON_RESUME`; FileNotFoundError for ``--resume``
        of a directory that holds no run."""
        if cfg.resume:
            if not self.file("config.json").exists() and not self.has_checkpoint:
                raise FileNotFoundError(f"--resume: no {self.file('state.pt')} to resume from")
            if self.has_checkpoint:
                self._record_resume(cfg)
                self.repair_metrics()
                return True
            self.log(f"--resume: {self.path} holds no complete checkpoint (the run stopped before its first "
                     "evaluation); starting it over")
        elif self.has_checkpoint:
            raise ValueError(f"{self.path} already holds a run; pass --resume to continue it or choose another --out")
        self._start_over(cfg)
        return False

    def _start_over(self, cfg: TrainConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        leftovers = [n for n in RUN_FILES if self.file(n).exists()]
        if leftovers:
            self.log(f"{self.path}: removing what an interrupted start left ({', '.join(leftovers)})")
            for name in leftovers:
                self.file(name).unlink()
        write_json(self.file("config.json"), cfg.to_json())

    def _record_resume(self, cfg: TrainConfig) -> None:
        saved = load_config(self.path)
        allowed, refused = resume_changes(saved, cfg)
        if refused:
            raise ValueError(f"--resume {self.path}: options differ from the run's config.json "
                             f"({'; '.join(refused)}); only {', '.join(sorted(MUTABLE_ON_RESUME))} may change")
        if allowed:
            state = load_torch_file(self.file("state.pt"))
            entry = {"step": int(state.get("step", 0)) if isinstance(state, dict) else None, "time": time.time(),
                     "changed": {k: list(v) for k, v in allowed.items()}}
            with open(self.file("resume.jsonl"), "a") as f:
                f.write(json.dumps(entry) + "\n")
            write_json(self.file("config.json"), cfg.to_json())
            self.log("resume changes " + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in allowed.items())
                     + f" (recorded in {self.file('resume.jsonl')})")

    def repair_metrics(self) -> None:
        """Cut a torn last line off ``metrics.jsonl`` (with a warning) so appends stay well-formed."""
        path = self.file("metrics.jsonl")
        if not path.exists():
            return
        good = [json.dumps(r) for r in read_metrics(self.path, warn=self.log)]
        raw = path.read_text(errors="replace")
        if raw and not raw.endswith("\n") or len(good) != sum(1 for ln in raw.splitlines() if ln.strip()):
            write_atomic(path, "".join(line + "\n" for line in good).encode())

    def append_metrics(self, rec: dict[str, Any]) -> None:
        with open(self.file("metrics.jsonl"), "a") as f:
            f.write(json.dumps(rec, default=_json_default) + "\n")

    def save_state(self, payload: dict[str, Any]) -> None:
        """Write ``state.pt`` atomically: the last file of a checkpoint, its completeness marker."""
        import torch
        with staged_path(self.file("state.pt")) as staged:
            torch.save(payload, staged)

    def load_state(self, device: Any) -> dict[str, Any]:
        state = load_torch_file(self.file("state.pt"), device)
        if not isinstance(state, dict) or not {"model", "optimizer", "step", "best"} <= set(state):
            raise ValueError(f"{self.file('state.pt')}: not an lgc training state (model, optimizer, step, best)")
        return state
