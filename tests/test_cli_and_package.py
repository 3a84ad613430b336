"""The package front door and the CLI skeleton."""
import subprocess
import sys

import numpy as np
import pytest

import lgc
from lgc.cli.main import main
from lgc.ir import example_circuit, save


def test_import_lgc_does_not_import_torch():
    code = "import sys, lgc, lgc.ir, lgc.backends; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_inspect_example(capsys):
    assert main(["inspect", "example"]) == 0
    out = capsys.readouterr().out
    assert "gates" in out and "XOR 3" in out


def test_inspect_file_and_json(tmp_path, capsys):
    save(example_circuit(), tmp_path / "c.lgc")
    assert main(["inspect", str(tmp_path / "c.lgc"), "--json"]) == 0
    assert '"num_gates": 6' in capsys.readouterr().out


def test_inspect_bad_file_exits_2(tmp_path, capsys):
    p = tmp_path / "bad.lgc"
    p.write_bytes(b"garbage")
    assert main(["inspect", str(p)]) == 2
    assert "not an .lgc file" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing.lgc")]) == 2


def test_inspect_draw(tmp_path):
    assert main(["inspect", "example", "--draw", str(tmp_path / "cone.png")]) == 0
    assert (tmp_path / "cone.png").stat().st_size > 1000


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "lgc", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "inspect" in out.stdout


def test_numpy_target_and_unknown_target():
    net = lgc.compile(example_circuit(), target="numpy", opt_level=0)
    x = np.array([[1, 0, 0, 1]], bool)
    np.testing.assert_array_equal(net(x), lgc.ir.simulate(example_circuit(), x))
    assert "numpy" in lgc.targets()
    with pytest.raises(ValueError, match="unknown target 'tpu'"):
        lgc.compile(example_circuit(), target="tpu", opt_level=0)


def test_compiled_net_save_load(tmp_path):
    net = lgc.compile(example_circuit(), target="numpy", opt_level=0)
    net.save(tmp_path / "n.lgc")
    back = lgc.load(tmp_path / "n.lgc")
    assert back.target == "numpy" and back.circuit == example_circuit()
    with pytest.raises(ValueError, match="cannot tell the format"):
        lgc.load(tmp_path / "n.weird")
