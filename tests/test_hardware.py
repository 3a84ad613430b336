"""Hardware export checked by real EDA tools: Icarus Verilog simulates the emitted Verilog
(plain, pipelined, group-sum head) against lgc.ir.simulate, yosys synthesises it, Berkeley ABC
reads the BLIF and AIGER files, and lgc.passes.abc (lgc/passes/external_abc.py) round-trips through ABC.

Each hypothesis example starts iverilog once and checks many vectors in that run."""
from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lgc
from lgc.backends import verilog
from lgc.ir import Circuit, GroupSumHead, random_layered_circuit, simulate
from lgc.ir.formats import aiger, blif
from conftest import need
from strategies import circuits


def _tool(name: str) -> str:
    path = shutil.which(name)
    need("eda", None if path else f"{name} is not installed (apt-get install iverilog yosys berkeley-abc)")
    return path


def _abc() -> str:
    from lgc.passes.external_abc import find_abc
    path = find_abc()
    need("eda", None if path else "berkeley-abc is not installed")
    return path


def _bits_to_int(rows: list[str]) -> np.ndarray:
    """Verilog %b strings (MSB first) -> uint8 [N, width], column j = bit j."""
    return np.array([[int(ch) for ch in reversed(r)] for r in rows], dtype=np.uint8).reshape(len(rows), -1)


def run_iverilog(c: Circuit, x: np.ndarray, tmp, *, pipeline_every: int | None = None, module: str = "dut_net"):
    """Simulate the module on rows of x; returns (y bits, scores or None, class_index or None, latency seen)."""
    iverilog, vvp = _tool("iverilog"), _tool("vvp")
    n, o = c.num_inputs, c.num_outputs
    src = os.path.join(tmp, "net.v")
    verilog.write(c, src, module=module, pipeline_every=pipeline_every)
    vec = os.path.join(tmp, "vec.txt")
    with open(vec, "w") as f:
        f.writelines("".join("1" if v else "0" for v in row[::-1]) + "\n" for row in x)
    head = c.head is not None
    w, iw = (verilog.score_width(c), verilog.index_width(c)) if head else (0, 0)
    decl = [f"reg [{n - 1}:0] mem [0:{len(x) - 1}];", f"reg [{n - 1}:0] x;", f"wire [{o - 1}:0] y;"]
    conn = [".x(x)", ".y(y)"]
    show = '$display("%b %b %b", y, scores, class_index);' if head else '$display("%b", y);'
    if head:
        decl += [f"wire [{c.head.k * w - 1}:0] scores;", f"wire [{iw - 1}:0] class_index;"]
        conn += [".scores(scores)", ".class_index(class_index)"]
    if pipeline_every is None:
        body = f"""for (i = 0; i < {len(x)}; i = i + 1) begin x = mem[i]; #1; {show} end"""
    else:
        decl += ["reg clk, rst, valid_in;", "wire valid_out;"]
        conn += [".clk(clk)", ".rst(rst)", ".valid_in(valid_in)", ".valid_out(valid_out)"]
        body = f"""clk = 0; rst = 1; valid_in = 0; x = 0; #5 clk = 1; #5 clk = 0; rst = 0;
    for (i = 0; i < {len(x) + 40}; i = i + 1) begin
      if (i < {len(x)}) begin x = mem[i]; valid_in = 1; end else begin x = 0; valid_in = 0; end
      #5 clk = 1; #1 if (valid_out) begin $write("%0d ", i); {show} end #4 clk = 0;
    end"""
    tb = os.path.join(tmp, "tb.v")
    with open(tb, "w") as f:
        f.write(f"""module tb;
  {' '.join(decl)}
  integer i;
  {module} dut({', '.join(conn)});
  initial begin
    $readmemb("{vec}", mem);
    {body}
    $finish;
  end
endmodule
""")
    exe = os.path.join(tmp, "sim.vvp")
    r = subprocess.run([iverilog, "-g2005", "-o", exe, tb, src], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([vvp, "-n", exe], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = [ln.split() for ln in r.stdout.splitlines() if ln and ln[0] in "0123456789"]
    latency = None
    if pipeline_every is not None:
        cycles = [int(ln[0]) for ln in lines]
        latency = cycles[0] + 1 if cycles else None
        assert cycles == list(range(cycles[0], cycles[0] + len(x))), "valid_out must follow valid_in, one per cycle"
        lines = [ln[1:] for ln in lines]
    assert len(lines) == len(x), r.stdout[-2000:]
    y = _bits_to_int([ln[0] for ln in lines])
    if not head:
        return y, None, None, latency
    sb = _bits_to_int([ln[1] for ln in lines])
    scores = (sb.reshape(len(x), c.head.k, w) << np.arange(w)).sum(axis=2)
    cls = (_bits_to_int([ln[2] for ln in lines]) << np.arange(iw)).sum(axis=1)
    return y, scores, cls, latency


def _vectors(c: Circuit, count: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).integers(0, 2, (count, c.num_inputs)).astype(bool)
    return x


def check_verilog(c: Circuit, tmp, pipeline_every=None, count=96, seed=0):
    x = _vectors(c, count, seed)
    y, scores, cls, latency = run_iverilog(c, x, tmp, pipeline_every=pipeline_every)
    np.testing.assert_array_equal(y, simulate(c, x, head=False))
    if c.head is not None:
        want = simulate(c, x)
        np.testing.assert_array_equal(scores, want)
        np.testing.assert_array_equal(cls, np.argmax(want, axis=1))  # lowest index wins ties
    if pipeline_every is not None:
        assert latency == verilog.pipeline_latency(c, pipeline_every)


_small = circuits(max_inputs=10, max_gates=60, max_outputs=10, min_inputs=1).filter(lambda c: c.num_outputs > 0)


@settings(max_examples=12)
@given(_small)
def test_verilog_matches_oracle(tmp_path_factory, c):
    check_verilog(c, str(tmp_path_factory.mktemp("v")))


@settings(max_examples=10)
@given(_small, st.integers(1, 4))
def test_pipelined_verilog_matches_oracle(tmp_path_factory, c, every):
    check_verilog(c, str(tmp_path_factory.mktemp("p")), pipeline_every=every)


@pytest.mark.parametrize("every", [None, 2])
def test_verilog_head_ties_and_larger_net(tmp_path, every):
    c = random_layered_circuit(40, [300, 300, 120], num_classes=6, tau=2.0, seed=5)
    check_verilog(c, str(tmp_path), pipeline_every=every, count=300)
    # ties: all outputs equal -> every class scores the same -> class 0
    const = Circuit(3, [0, 15], [0, 0], [0, 0], [3] * 6 + [4] * 6, head=GroupSumHead(4))
    check_verilog(const, str(tmp_path), count=4)
    check_verilog(const.replace(outputs=[4] * 12), str(tmp_path), pipeline_every=1, count=4)


@pytest.mark.parametrize("every", [None, 1])
def test_verilog_every_op_exhaustively(tmp_path, every):
    # each op on (x0, x1), on (x1, x0) and on a gate, so ignored operands and levels vary
    ops = np.concatenate([np.arange(16)] * 3)
    a = np.concatenate([np.zeros(16), np.ones(16), 2 + np.arange(16)]).astype(int)
    b = np.concatenate([np.ones(16), np.zeros(16), np.ones(16)]).astype(int)
    c = Circuit(2, ops, a, b, 2 + np.arange(48))
    x = ((np.arange(4)[:, None] >> np.arange(2)) & 1).astype(bool)
    y, _, _, _ = run_iverilog(c, x, str(tmp_path), pipeline_every=every)
    np.testing.assert_array_equal(y, simulate(c, x))


def test_verilog_rejects_bad_options(tmp_path):
    c = random_layered_circuit(4, [4], seed=0)
    with pytest.raises(ValueError, match="identifier"):
        verilog.dumps(c, module="1bad")
    with pytest.raises(ValueError, match="identifier"):
        verilog.dumps(c, module="module")
    with pytest.raises(ValueError, match="pipeline_every"):
        verilog.dumps(c, pipeline_every=0)
    with pytest.raises(ValueError, match="output"):
        verilog.dumps(c.replace(outputs=[]))


@pytest.mark.parametrize("every", [None, 3])
def test_yosys_synthesises(tmp_path, every):
    yosys = _tool("yosys")
    c = random_layered_circuit(16, [60, 60, 30], num_classes=3, seed=1)
    path = tmp_path / "net.v"
    lgc.export(c, path, module="lgc_top", pipeline_every=every)
    report = tmp_path / "stat.txt"
    r = subprocess.run([yosys, "-q", "-p", f"read_verilog {path}; synth -top lgc_top; tee -q -o {report} stat"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ERROR" not in r.stdout + r.stderr, r.stdout[-2000:] + r.stderr[-2000:]
    cells = re.search(r"Number of cells:\s+(\d+)", report.read_text())
    assert cells and int(cells.group(1)) > 0, report.read_text()
    if every is not None:
        assert "DFF" in report.read_text()


def test_abc_reads_blif_and_aiger(tmp_path):
    abc = _abc()
    c = random_layered_circuit(20, [80, 80, 40], num_classes=4, seed=2)
    lgc.export(c, tmp_path / "n.blif")
    lgc.export(c, tmp_path / "n.aig")
    script = (f"read_blif {tmp_path / 'n.blif'}; print_stats; strash; write_aiger {tmp_path / 'b.aig'}; "
              f"read {tmp_path / 'n.aig'}; print_stats; cec {tmp_path / 'n.blif'} {tmp_path / 'n.aig'}; "
              f"read_blif {tmp_path / 'n.blif'}; strash; dc2; if -K 4; write_blif {tmp_path / 'm.blif'}")
    r = subprocess.run([abc, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Networks are equivalent" in r.stdout, r.stdout[-3000:]
    assert r.stdout.count("i/o =   20/   40") == 2, r.stdout
    # what ABC wrote reads back and means the same
    x = _vectors(c, 512, 1)
    for name, reader in (("b.aig", aiger.load), ("m.blif", blif.load)):
        back = reader(tmp_path / name)
        np.testing.assert_array_equal(simulate(back, x, head=False), simulate(c, x, head=False))


@settings(max_examples=8)
@given(circuits(max_inputs=10, max_gates=60).filter(lambda c: c.num_outputs > 0 and c.num_inputs > 0))
def test_abc_pass_preserves_function(c):
    _abc()
    out = lgc.passes.abc(c, "strash; dc2; resyn2")
    assert out.head == c.head
    assert lgc.passes.equivalent(c, out)


def test_abc_pass_reports_missing_tool(monkeypatch):
    mod = importlib.import_module("lgc.passes.external_abc")
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("LGC_ABC", raising=False)
    with pytest.raises(mod.ABCError, match="not installed"):
        mod.abc(random_layered_circuit(4, [4], seed=0))


@settings(max_examples=8)
@given(circuits(max_inputs=8, max_gates=60).filter(lambda c: c.num_outputs > 0))
def test_abc_written_blif_reads_back(tmp_path_factory, c):
    # ABC's LUT mapping and collapse write covers with up to 6 inputs and off-set covers
    abc = _abc()
    tmp = tmp_path_factory.mktemp("ab")
    blif.save(c, tmp / "n.blif")
    r = subprocess.run([abc, "-c", f"read_blif {tmp / 'n.blif'}; strash; if -K 6; write_blif {tmp / 'lut.blif'}; "
                        f"read_blif {tmp / 'n.blif'}; collapse; write_blif {tmp / 'sop.blif'}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    x = ((np.arange(1 << c.num_inputs)[:, None] >> np.arange(c.num_inputs)) & 1).astype(bool)
    for name in ("lut.blif", "sop.blif"):
        back = blif.load(tmp / name)
        np.testing.assert_array_equal(simulate(back, x, head=False), simulate(c, x, head=False), err_msg=name)
