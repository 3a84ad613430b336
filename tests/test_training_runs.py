"""Training runs that can be trusted: no code from a file, resume rules, torn logs, interrupted starts,
options checked before the first step, hooks, the CLI generated from the config."""
import argparse
import dataclasses
import json
import pathlib
import pickle
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lgc.cli.main import main  # noqa: E402
from lgc.training import (ConvConfig, DistillConfig, GateBudget, Hook, MUTABLE_ON_RESUME, TrainConfig, Trainer,  # noqa: E402
                          discretisation_gap, read_metrics, train)
from lgc.training.options import add_arguments, from_arguments  # noqa: E402

LGC = pathlib.Path(__file__).resolve().parent.parent / "lgc"
QUIET = dict(log=lambda s: None)


def _tiny(tmp_path, name="run", **kw) -> TrainConfig:
    base = dict(dataset="digits", num_neurons=100, num_layers=2, tau=3.0, batch_size=64, num_iterations=20,
                eval_freq=10, seed=1, out=str(tmp_path / name), progress=False, threads=1, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


class _Gadget:
    """Unpickling this creates ``marker``: what a crafted checkpoint could do with weights_only=False."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path: pathlib.Path, marker: pathlib.Path) -> None:
    torch.save({"model": _Gadget(marker), "optimizer": {}, "step": 0, "best": {}, "state_dict": _Gadget(marker)}, path)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 20-step run (two evaluations), copied per test by ``_copy``."""
    root = tmp_path_factory.mktemp("runs")
    train(_tiny(root), **QUIET)
    return root / "run"


def _copy(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_no_code_runs_from_a_planted_state_or_best(finished, tmp_path):
    marker = tmp_path / "pwned"
    run = _copy(finished, tmp_path / "run")
    _plant(run / "state.pt", marker)
    with pytest.raises(ValueError, match="state.pt: refused"):
        train(_tiny(tmp_path, resume=True, num_iterations=30), **QUIET)
    assert not marker.exists()
    run = _copy(finished, tmp_path / "plot")
    _plant(run / "best.pt", marker)
    assert main(["plot", str(run), "--out-dir", str(tmp_path / "png")]) == 2
    assert not marker.exists()


def test_no_code_runs_from_a_planted_baseline_best(tmp_path, capsys):
    marker = tmp_path / "pwned"
    cfg = _tiny(tmp_path, baseline=True, num_neurons=32, num_iterations=10)
    train(cfg, **QUIET)
    _plant(tmp_path / "run" / "best.pt", marker)
    with pytest.raises(ValueError, match="best.pt: refused"):
        train(dataclasses.replace(cfg, resume=True), **QUIET)   # nothing left to train: straight to finish
    assert not marker.exists()


def test_no_unsafe_loading_in_the_source_tree():
    pattern = re.compile(r"weights_only\s*=\s*False|allow_pickle\s*=\s*True|pickle\.load|(?<![\w.])eval\(")
    hits = [f"{p.relative_to(LGC)}:{i}" for p in LGC.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []


def test_cifar_batches_unpickle_arrays_only(tmp_path):
    from lgc.data.images import _unpickle
    batch = {b"data": np.arange(12, dtype=np.uint8).reshape(2, 6), b"labels": [3, 4]}
    back = _unpickle(pickle.dumps(batch))
    assert np.array_equal(back[b"data"], batch[b"data"]) and back[b"labels"] == [3, 4]
    marker = tmp_path / "pwned"
    with pytest.raises(ValueError, match="refused"):
        _unpickle(pickle.dumps({b"data": _Gadget(marker)}))
    assert not marker.exists()


def test_resume_records_allowed_changes_and_refuses_the_rest(finished, tmp_path):
    _copy(finished, tmp_path / "run")
    with pytest.raises(ValueError, match=r"learning_rate: run has 0.01, now 0.05"):
        train(_tiny(tmp_path, resume=True, learning_rate=0.05), **QUIET)
    with pytest.raises(ValueError, match=r"conv_channels: run has 8, now 4"):
        train(_tiny(tmp_path, resume=True, conv=ConvConfig(channels=4)), **QUIET)
    assert not (tmp_path / "run" / "resume.jsonl").exists()
    train(_tiny(tmp_path, resume=True, num_iterations=30, eval_freq=15), **QUIET)
    log = [json.loads(line) for line in (tmp_path / "run" / "resume.jsonl").read_text().splitlines()]
    assert log[0]["step"] == 20 and log[0]["changed"] == {"num_iterations": [20, 30], "eval_freq": [10, 15]}
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["num_iterations"] == 30 and saved["eval_freq"] == 15
    assert [m["step"] for m in read_metrics(tmp_path / "run")] == [10, 20, 30]
    assert {"num_iterations", "eval_freq", "compile", "target"} <= MUTABLE_ON_RESUME
    assert not {"learning_rate", "seed", "batch_size", "conv_channels", "dataset"} & MUTABLE_ON_RESUME


def test_torn_last_metrics_line_is_tolerated_and_repaired(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 30, "loss": 0.1')             # a kill mid-append
    with pytest.warns(UserWarning, match="metrics.jsonl: line 3 is incomplete"):
        assert [m["step"] for m in read_metrics(run)] == [10, 20]
    with pytest.warns(UserWarning, match="incomplete"):
        assert main(["plot", str(run), "--out-dir", str(tmp_path / "png")]) == 0
    train(_tiny(tmp_path, resume=True, num_iterations=30), **QUIET)
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [10, 20, 30]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join([lines[0], "garbage", lines[1]]) + "\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2 is not a metrics record"):
        read_metrics(run)


@pytest.mark.parametrize("again", ["restart", "resume"])
def test_a_run_interrupted_before_its_first_checkpoint_starts_over(tmp_path, monkeypatch, again):
    from lgc.training.rundir import RunDir
    real = RunDir.save_state

    def killed(self, payload):
        (self.path / "state.pt.tmp123").write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "save_state", killed)
    said = []
    with pytest.raises(KeyboardInterrupt):
        train(_tiny(tmp_path), log=said.append)
    assert "no checkpoint yet" in said[-1]
    assert (tmp_path / "run" / "metrics.jsonl").exists() and not (tmp_path / "run" / "state.pt").exists()
    monkeypatch.setattr(RunDir, "save_state", real)
    summary = train(_tiny(tmp_path, resume=again == "resume"), **QUIET)
    assert summary["steps"] == 20 and [m["step"] for m in read_metrics(tmp_path / "run")] == [10, 20]


def test_zero_iterations_gives_a_complete_run(tmp_path):
    summary = train(_tiny(tmp_path, num_iterations=0), **QUIET)
    assert summary["steps"] == 0 and (tmp_path / "run" / "final.json").exists()


def test_options_are_checked_before_any_work(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown target 'cpu-sparc'"):
        train(_tiny(tmp_path, compile=True, target="cpu-sparc"), **QUIET)
    assert not (tmp_path / "run").exists()
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    with pytest.raises(ValueError, match="--plot needs matplotlib"):
        train(_tiny(tmp_path, plot=True), **QUIET)
    with pytest.raises(FileNotFoundError, match="--init-from"):
        train(_tiny(tmp_path, init_from=str(tmp_path / "none.pt")), **QUIET)
    with pytest.raises(ValueError, match="levels:N"):
        train(_tiny(tmp_path, dataset="mnist", binarize="quantile:3"), **QUIET)
    assert not (tmp_path / "run").exists()


def test_cli_prints_the_run_directory(tmp_path, capsys):
    assert main(["train", "--dataset", "digits", "-k", "100", "-l", "1", "-ni", "2", "-ef", "2", "--no-progress",
                 "--threads", "1", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"run directory: {tmp_path / 'r'} (new run)" in out and out.rstrip().endswith(str(tmp_path / "r"))


def test_cli_options_come_from_the_config_fields():
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainConfig)
    assert from_arguments(TrainConfig, parser.parse_args([])) == TrainConfig()
    cfg = from_arguments(TrainConfig, parser.parse_args(
        ["-k", "12", "-l", "3", "-t", "2", "-bs", "7", "-ni", "5", "-ef", "4", "-vss", "0.1", "-lr", "0.5",
         "--conv-no-last-pool", "--conv-channels", "3", "--no-progress", "--gate-budget", "99",
         "--distill-from", "a.pt", "b.pt", "--binarize", "levels:3"]))
    assert (cfg.num_neurons, cfg.num_layers, cfg.tau, cfg.batch_size, cfg.num_iterations, cfg.eval_freq) == (12, 3, 2, 7, 5, 4)
    assert cfg.valid_set_size == 0.1 and cfg.learning_rate == 0.5 and cfg.progress is False
    assert cfg.conv == ConvConfig(channels=3, last_pool=False) and cfg.gate_budget == 99
    assert cfg.distill.teachers == ["a.pt", "b.pt"] and cfg.binarize == "levels:3"
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    legacy = TrainConfig.from_json({"num_neurons": 5, "conv_channels": 4, "conv_last_pool": False})
    assert legacy.conv == ConvConfig(channels=4, last_pool=False)


def test_hooks_select_schedule_and_distil(finished, tmp_path):
    calls = {"epochs": [], "evals": []}

    class Count(Hook):
        def on_epoch_end(self, trainer, epoch):
            calls["epochs"].append(epoch)

        def on_evaluation(self, trainer, record):
            calls["evals"].append(record["step"])

    cfg = _tiny(tmp_path, num_iterations=45, eval_freq=15, gate_budget=10**9)
    summary = Trainer(cfg, hooks=[Count()], **QUIET).fit()
    assert calls == {"epochs": [1, 2], "evals": [15, 30, 45]}   # digits: 1347 training rows, 21 steps per epoch
    assert all("gates_O2" in m for m in read_metrics(tmp_path / "run")) and summary["best_step"] == 45
    # a budget no evaluation meets: nothing becomes best.pt, the last checkpoint is reported
    Trainer(_tiny(tmp_path, "tight", num_iterations=10), hooks=[GateBudget(1)], **QUIET).fit()
    assert not (tmp_path / "tight" / "best.pt").exists()
    train(_tiny(tmp_path, "kd", distill=DistillConfig(teachers=[str(finished / "best.pt")], weight=0.7)), **QUIET)
    assert json.loads((tmp_path / "kd" / "config.json").read_text())["distill"]["teachers"] == [str(finished / "best.pt")]
    plain, kd = (read_metrics(d) for d in (finished, tmp_path / "kd"))
    assert [m["loss"] for m in kd] != pytest.approx([m["loss"] for m in plain])   # the loss term is in play


def test_distillation_loss_term():
    from lgc.training import Distill
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    ce = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2]))
    hook = Distill(["unused.pt"], weight=1.0, temperature=2.0)
    hook.soft_targets = logits.clone()
    assert float(hook.adjust_loss(None, ce, logits, np.array([0, 1]))) == pytest.approx(0.0, abs=1e-6)
    hook.weight = 0.0
    assert float(hook.adjust_loss(None, ce, logits, np.array([0, 1]))) == pytest.approx(float(ce))
    hook.weight, hook.soft_targets = 0.5, torch.zeros(2, 3)
    kl = torch.nn.functional.kl_div(torch.log_softmax(logits / 2, 1), torch.full((2, 3), 1 / 3),
                                    reduction="batchmean")
    assert float(hook.adjust_loss(None, ce, logits, np.array([0, 1]))) == pytest.approx(0.5 * float(ce) + 2.0 * float(kl))


def test_discretisation_gap_of_a_conv_model():
    from lgc.frontend import build_model
    from lgc.training import conv_model_config
    torch.manual_seed(0)
    model = build_model(conv_model_config((1, 8, 8), {"thresholds": [0.5], "train_passthrough": True}, 4,
                                          channels=2, depth=2, blocks=1, fc=[40], tau=3.0, residual_init=2.0))
    x = np.random.default_rng(0).random((300, 64), dtype=np.float32)
    y = np.random.default_rng(1).integers(0, 4, 300)
    gap = discretisation_gap(model, x, y)
    assert set(gap) == {"all_soft", "hard_conv_soft_fc", "eval_mode"} and model.training
    model.eval()
    with torch.no_grad():
        assert gap["eval_mode"] == float(np.mean(model(torch.from_numpy(x)).argmax(1).numpy() == y))
        model.train()
        assert gap["all_soft"] == float(np.mean(model(torch.from_numpy(x)).argmax(1).numpy() == y))


def test_training_library_has_no_import_cycle_and_no_cli_import():
    import importlib.util
    spec = importlib.util.spec_from_file_location("import_cycles", LGC.parent / "tools" / "import_cycles.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    graph = tool.import_graph(LGC, lazy=True)
    assert [c for c in tool.cycles(graph) if any(m.startswith("lgc.training") for m in c)] == []
    assert [m for m, deps in graph.items() if not m.startswith("lgc.cli") and m != "lgc.__main__"
            and any(d.startswith("lgc.cli") for d in deps)] == []


def test_image_bit_planes_and_the_conv_recipe_shape(mnist_dir):
    """``--binarize levels:3`` on MNIST: three planes x > 0.25, 0.5, 0.75, trained on the bits; the conv
    recipe's options build the network of experiments/conv_mnist/LOG.md (62,596 gates lowered)."""
    from lgc import lower
    from lgc.frontend import build_model
    from lgc.training import load_training_data, model_config
    from lgc.cli.main import build_parser
    argv = ["train", "--dataset", "mnist20x20", "--binarize", "levels:3", "--arch", "conv", "--conv-channels", "12",
            "--conv-padding", "0", "--conv-residual", "2", "--conv-no-last-pool", "--parametrization", "inputwise",
            "-k", "8000", "-l", "2", "-t", "10", "--data-dir", str(mnist_dir.parent), "--no-download"]
    from lgc.cli.train import config_from_args
    cfg = config_from_args(build_parser().parse_args(argv))
    data, valid = load_training_data(cfg)
    assert valid is None and not data.train_on_raw and data.thresholds[:, 0].tolist() == [0.25, 0.5, 0.75]
    assert np.array_equal(data.bits(data.x_test[:5]).reshape(5, 3, 400)[:, 1], data.x_test[:5] > 0.5)
    model = build_model(model_config(cfg, data))
    assert lower(model.eval()).num_gates == 62_596
