"""The ``llvm`` target beyond the shared native-target tests: it needs no C compiler at run time,
and bool arrays whose True bytes are not 0x01 give the oracle's answer."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from conftest import REPO, need

import lgc
from lgc.backends import llvm
from lgc.ir import pack_bits, random_layered_circuit, simulate


def test_runs_without_a_c_compiler(tmp_path):
    need("llvm", llvm.available())
    script = (
        "import numpy as np, lgc\n"
        "from lgc.ir import random_layered_circuit, simulate\n"
        "from lgc.backends import cpu_c\n"
        "assert cpu_c.available('c') is not None, 'a C compiler is reachable'\n"
        "c = random_layered_circuit(90, [100, 60], num_classes=4, seed=11)\n"
        "x = np.random.default_rng(0).random((777, 90)) < 0.5\n"
        "assert np.array_equal(lgc.compile(c, target='llvm')(x), simulate(c, x))\n"
        "print('ok')\n")
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CC", "LGC_CC", "PATH")}
    env.update(PATH=str(empty), CC=str(tmp_path / "no-cc"), LGC_CC=str(tmp_path / "no-cc"), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_bool_bytes_other_than_one_are_true():
    need("llvm", llvm.available())
    rng = np.random.default_rng(5)
    for n_in, head in ((784, 10), (70, None), (5, 3)):
        c = random_layered_circuit(n_in, [120, 60], num_classes=head, seed=n_in)
        net = lgc.compile(c, target="llvm", opt_level=0, threads=1)
        for n in (1, 63, 64, 65, 1000):
            x = rng.random((n, n_in)) < 0.5
            want = simulate(c, x)
            for true_byte in (255, 2, 128):
                assert np.array_equal(net((x.astype(np.uint8) * true_byte).view(bool)), want), (n_in, n, true_byte)
            mixed = np.where(x, rng.integers(1, 256, size=x.shape), 0).astype(np.uint8).view(bool)
            assert np.array_equal(net(mixed), want)
            assert np.array_equal(net(pack_bits(x)), want)


def test_zero_rows_of_raw_features():
    """An empty batch of raw features is an empty answer (numpy's reshape(0, -1) used to raise)."""
    need("llvm", llvm.available())
    from lgc.ir import InputEncoder
    c = random_layered_circuit(12, [16, 8], num_classes=2, seed=1).replace(
        input_encoder=InputEncoder(np.arange(12) % 4, np.zeros(12), 4))
    empty = np.zeros((0, 4))
    assert simulate(c, empty).shape == (0, 2)
    assert np.array_equal(lgc.compile(c, target="llvm")(empty), simulate(c, empty))
