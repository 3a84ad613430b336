"""The training loop: loss falls, compiled accuracy equals eval mode, resume repeats the run."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lgc.training import CheckFailed, TrainConfig, read_metrics, train  # noqa: E402


def _tiny(tmp_path, name="run", **kw) -> TrainConfig:
    base = dict(dataset="digits", num_neurons=300, num_layers=2, tau=3.0, batch_size=64, num_iterations=40,
                eval_freq=20, seed=1, out=str(tmp_path / name), progress=False, threads=1, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_mnist_tiny_network_learns_and_compiles_exactly(mnist_dir, tmp_path):
    cfg = TrainConfig(dataset="mnist20x20", num_neurons=400, num_layers=2, tau=10.0, batch_size=100,
                      num_iterations=60, eval_freq=20, seed=0, data_dir=str(mnist_dir.parent), download=False,
                      compile=True, target="numpy", valid_set_size=0.05, out=str(tmp_path / "m"), progress=False,
                      threads=1, device="cpu")
    summary = train(cfg, log=lambda s: None)
    losses = [m["loss"] for m in read_metrics(tmp_path / "m")]
    assert losses[-1] < losses[0]
    assert summary["test_acc_eval"] > 0.2  # 60 steps of a tiny net: well above chance (0.1), far from done
    # the one binarisation rule: compiled (raw pixels through the circuit's encoder) == eval mode
    assert summary["compiled_matches"] and summary["compiled_predictions_equal"]
    assert summary["compiled_test_acc"] == summary["test_acc_eval"]
    assert summary["gates_before"] == 800 and 0 < summary["gates_after"] <= 800


def test_resume_continues_the_same_run(tmp_path):
    train(_tiny(tmp_path, "whole"), log=lambda s: None)
    train(_tiny(tmp_path, "split", num_iterations=20), log=lambda s: None)
    train(_tiny(tmp_path, "split", resume=True), log=lambda s: None)
    whole = read_metrics(tmp_path / "whole")
    split = read_metrics(tmp_path / "split")
    assert [m["step"] for m in whole] == [m["step"] for m in split] == [20, 40]
    for a, b in zip(whole, split):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
        assert a["test_acc_eval"] == b["test_acc_eval"]


def test_refuses_to_overwrite_and_to_resume_nothing(tmp_path):
    train(_tiny(tmp_path, num_iterations=20), log=lambda s: None)
    with pytest.raises(ValueError, match="already holds a run"):
        train(_tiny(tmp_path, num_iterations=20), log=lambda s: None)
    with pytest.raises(FileNotFoundError, match="resume"):
        train(_tiny(tmp_path, "none", resume=True), log=lambda s: None)


def test_best_checkpoint_by_validation_and_files(tmp_path):
    summary = train(_tiny(tmp_path, valid_set_size=0.2), log=lambda s: None)
    metrics = read_metrics(tmp_path / "run")
    best = max(metrics, key=lambda m: (m["valid_acc_eval"], -m["step"]))
    assert summary["best_step"] == best["step"]
    assert summary["valid_acc_eval"] == best["valid_acc_eval"]
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["num_neurons"] == 300 and cfg["learning_rate"] == 0.01
    for name in ("best.pt", "last.pt", "state.pt", "final.json"):
        assert (tmp_path / "run" / name).exists()


def test_compiled_mismatch_is_a_failed_check(tmp_path, monkeypatch):
    import lgc.backends
    real_build = lgc.backends.build

    def broken_build(circuit, target="cpu", **kw):
        net = real_build(circuit, target, **kw)
        call = net.__call__
        net.__class__ = type("Broken", (net.__class__,), {"__call__": lambda self, x: np.roll(call(x), 1, axis=1)})
        return net

    monkeypatch.setattr(lgc.backends, "build", broken_build)
    with pytest.raises(CheckFailed, match="compiled accuracy"):
        train(_tiny(tmp_path, compile=True, target="numpy", num_iterations=20), log=lambda s: None)


def test_baseline_mlp_trains(tmp_path):
    summary = train(_tiny(tmp_path, baseline=True, num_neurons=64, num_layers=3, num_iterations=60), log=lambda s: None)
    assert summary["test_acc_eval"] > 0.5


def test_resume_with_other_architecture_is_refused(tmp_path):
    train(_tiny(tmp_path, num_iterations=20), log=lambda s: None)
    with pytest.raises(ValueError, match="num_neurons: run has 300, now 400"):
        train(_tiny(tmp_path, num_neurons=400, resume=True), log=lambda s: None)


def test_hard_st_relaxation_trains_the_discrete_network(tmp_path):
    summary = train(_tiny(tmp_path, relaxation="hard-st", num_iterations=60, binarize="threshold:8"),
                    log=lambda s: None)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["relaxation"] == "hard-st"
    metrics = read_metrics(tmp_path / "run")
    # the training forward runs the argmax gates, so train-mode and eval-mode accuracy coincide
    assert all(m["test_acc_train"] == m["test_acc_eval"] for m in metrics)
    assert summary["test_acc_eval"] > 0.4   # 10 classes; 0.59 after 60 steps with this seed


def test_inputwise_parametrization_trains_and_compiles_exactly(tmp_path):
    from lgc.frontend import load_checkpoint
    summary = train(_tiny(tmp_path, parametrization="inputwise", num_iterations=60, compile=True, target="numpy"),
                    log=lambda s: None)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["parametrization"] == "inputwise"
    model = load_checkpoint(tmp_path / "run" / "best.pt")
    assert all(m.weights.shape[-1] == 4 for m in model if hasattr(m, "weights"))
    assert summary["compiled_matches"] and summary["compiled_test_acc"] == summary["test_acc_eval"]
    assert summary["test_acc_eval"] > 0.4   # 10 classes, 60 steps


def test_annealed_temperature_schedule_and_run(tmp_path):
    from lgc.training import annealed_temperature
    cfg = _tiny(tmp_path, temperature=1.0, anneal_to=0.05, anneal_from=0.5, num_iterations=40)
    assert [annealed_temperature(cfg, s) for s in (0, 10, 20)] == [1.0, 1.0, 1.0]
    assert annealed_temperature(cfg, 30) == pytest.approx(0.05 ** 0.5)
    assert annealed_temperature(cfg, 40) == pytest.approx(0.05)
    assert annealed_temperature(_tiny(tmp_path, temperature=0.5), 40) == 0.5   # no annealing: constant
    summary = train(cfg, log=lambda s: None)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["anneal_to"] == 0.05
    assert summary["test_acc_eval"] > 0.3
    with pytest.raises(ValueError, match="anneal_from in"):
        train(_tiny(tmp_path, "bad", anneal_to=0.1, anneal_from=1.0), log=lambda s: None)


def test_cosine_learning_rate_schedule_and_run(tmp_path):
    from lgc.training import learning_rate_at
    cfg = _tiny(tmp_path, learning_rate=0.05, lr_schedule="cosine", num_iterations=40)
    assert [learning_rate_at(cfg, s) for s in (0, 20, 40)] == pytest.approx([0.05, 0.025, 0.0])
    assert learning_rate_at(_tiny(tmp_path, learning_rate=0.02), 30) == 0.02   # constant: difflogic's
    summary = train(cfg, log=lambda s: None)
    assert summary["test_acc_eval"] > 0.3
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=False)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(learning_rate_at(cfg, 39))   # the last step's
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        train(_tiny(tmp_path, "bad", lr_schedule="linear"), log=lambda s: None)
