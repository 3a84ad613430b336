"""The subcommands: help everywhere, exit codes (0 ok, 1 a check failed, 2 bad usage or input)."""
import json

import numpy as np
import pytest

pytest.importorskip("torch")

import lgc  # noqa: E402
from lgc.cli.main import COMMANDS, main  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", "--dataset", "digits", "-k", "200", "-l", "2", "-t", "3", "-bs", "64", "-ni", "30", "-ef", "15",
            "--out", str(out), "--no-progress", "--threads", "1", "--compile", "--target", "numpy"]
    assert main(argv) == 0
    return out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "usage: lgc " + command in capsys.readouterr().out


def test_train_writes_a_run(run_dir):
    final = json.loads((run_dir / "final.json").read_text())
    assert final["compiled_matches"] and final["gates_before"] == 400
    assert [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [15, 30]


def test_train_bad_input_exits_2(tmp_path, capsys):
    assert main(["train", "--dataset", "imagenet", "--out", str(tmp_path / "a")]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    assert main(["train", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path), "--no-download",
                 "--out", str(tmp_path / "b")]) == 2
    assert "train-images-idx3-ubyte.gz" in capsys.readouterr().err
    assert main(["train", "--dataset", "digits", "--resume", "--out", str(tmp_path / "c")]) == 2
    assert main(["train", "--dataset", "digits", "-k", "205", "-l", "1", "--out", str(tmp_path / "d")]) == 2


def test_plot_draws_curves_and_histogram(run_dir, tmp_path, capsys):
    assert main(["plot", str(run_dir), "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "learning_curves.png").stat().st_size > 1000
    assert (tmp_path / "gate_histogram.png").stat().st_size > 1000
    assert main(["plot", str(tmp_path / "nothing")]) == 2


def test_compile_checkpoint_and_reload(run_dir, tmp_path, capsys):
    out = tmp_path / "net.lgc"
    assert main(["compile", str(run_dir / "best.pt"), "--target", "numpy", "-o", str(out)]) == 0
    net = lgc.load(out)
    assert net.target == "numpy" and net.circuit.input_encoder is not None
    from lgc.data import load_dataset
    data = load_dataset("digits")
    np.testing.assert_array_equal(net.predict(data.x_test), net.predict(data.bits(data.x_test)))
    assert main(["compile", str(run_dir / "best.pt"), "--target", "tpu", "-o", str(out)]) == 2
    assert main(["compile", str(run_dir / "best.pt"), "-o", str(tmp_path / "net.v")]) == 2
    assert main(["compile", str(tmp_path / "missing.pt"), "-o", str(out)]) == 2
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert main(["compile", str(tmp_path / "bad.pt"), "-o", str(out)]) == 2


def test_export_and_inspect_checkpoint(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir / "best.pt"), "-o", str(tmp_path / "c.txt")]) == 0
    assert lgc.load(tmp_path / "c.txt").num_gates > 0
    assert main(["export", str(run_dir / "best.pt"), "-o", str(tmp_path / "c.weird")]) == 2
    assert main(["export", "example", "-o", str(tmp_path / "c.x"), "--format", "nonsense"]) == 2
    assert main(["inspect", str(run_dir / "best.pt"), "--json"]) == 0


def test_bench_small_random_network(tmp_path, capsys):
    argv = ["bench", "--shape", "16,64x2,4", "--batch", "300", "--seconds", "0.05", "--targets", "numpy",
            "--json", str(tmp_path / "b.json")]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert rows[0]["target"] == "numpy" and rows[0]["matches_reference"] and rows[0]["samples_per_second"] > 0
    assert main(["bench", "--list"]) == 0
    import shutil
    from conftest import need
    need("c-compiler", None if shutil.which("gcc") else "no gcc on PATH")
    assert main(["bench", "--shape", "16,64x2,4", "--batch", "128", "--seconds", "0.02", "--targets", "numpy",
                 "--difflogic"]) == 0
    assert "difflogic-C" in capsys.readouterr().out
    assert main(["bench", "--shape", "16,64,4"]) == 2


def test_demo_runs_and_agrees(capsys):
    assert main(["demo", "-ni", "40", "-k", "200", "-l", "2", "--targets", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "after O2" in out and "numpy" in out and "yes" in out
