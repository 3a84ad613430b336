"""Edge cases other tools' users report (issue 16, item 7): Verilog reserved words, every BLIF
construct yosys reads in a combinational file, and circuits without inputs (AIGER constants)."""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lgc
from lgc.backends import verilog
from lgc.ir import Circuit, GroupSumHead, simulate
from lgc.ir.formats import FormatError, aiger, blif, text
from lgc.ir import serialize
from lgc.passes import PASSES, equivalent
from conftest import need


def _tool(name: str) -> str:
    path = shutil.which(name)
    need("eda", None if path else f"{name} is not installed (apt-get install iverilog yosys)")
    return path


# -- Verilog identifiers ---------------------------------------------------------------------------
REPORTED = ["task", "table", "while", "real", "tri", "wand", "posedge", "genvar", "localparam", "specify"]


def test_every_reserved_word_is_refused_as_a_module_name():
    c = lgc.ir.example_circuit()
    assert set(REPORTED) <= verilog.VERILOG_2005_KEYWORDS
    assert verilog.VERILOG_2005_KEYWORDS < verilog.SYSTEMVERILOG_2017_KEYWORDS
    for word in sorted(verilog.SYSTEMVERILOG_2017_KEYWORDS):
        with pytest.raises(ValueError, match="reserved word"):
            lgc.export(c, "unused.v", module=word)
    for bad in ("", "1net", "a-b", "net name", "$net", "x" * 1025):
        with pytest.raises(ValueError, match="not a Verilog identifier"):
            verilog.dumps(c, module=bad)


def test_the_tools_agree_with_the_keyword_list(tmp_path):
    """iverilog -g2012 and yosys reject the reserved words as module names (so the list holds real
    keywords) and accept what lgc writes for legal near-misses (case matters; a suffix makes it legal)."""
    iverilog, yosys = _tool("iverilog"), _tool("yosys")
    c = lgc.ir.example_circuit()
    words = sorted(verilog.SYSTEMVERILOG_2017_KEYWORDS)
    if os.environ.get("HYPOTHESIS_PROFILE") != "thorough":  # all 248 take ~10 s of iverilog runs
        words = sorted(set(REPORTED) | set(np.random.default_rng(0).choice(words, 20, replace=False)))
    for word in words:  # the file lgc would have written before the check
        src = tmp_path / f"kw_{word}.v"
        src.write_text(verilog.dumps(c, module="PLACEHOLDER").replace("module PLACEHOLDER", f"module {word}"))
        r = subprocess.run([iverilog, "-g2012", "-o", os.devnull, str(src)], capture_output=True, text=True)
        assert r.returncode != 0, f"iverilog accepted reserved word {word!r}"
    legal = [w + "_net" for w in REPORTED] + [w.upper() for w in REPORTED] + ["Task", "tri_", "_table", "while$1"]
    src = tmp_path / "legal.v"
    src.write_text("".join(verilog.dumps(c, module=name) for name in legal))
    r = subprocess.run([iverilog, "-g2012", "-o", os.devnull, str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([yosys, "-q", "-p", f"read_verilog -sv {src}; hierarchy; proc"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout
    bad = tmp_path / "kw_yosys.v"
    bad.write_text(verilog.dumps(c, module="PLACEHOLDER").replace("module PLACEHOLDER", "module task"))
    r = subprocess.run([yosys, "-q", "-p", f"read_verilog -sv {bad}"], capture_output=True, text=True)
    assert r.returncode != 0


# -- BLIF constructs -------------------------------------------------------------------------------
def _blif_truth(c: Circuit) -> np.ndarray:
    x = ((np.arange(1 << c.num_inputs)[:, None] >> np.arange(c.num_inputs)) & 1).astype(bool)
    return simulate(c, x, head=False)


def test_blif_conn_and_barbuf_are_connections():
    src = """.model m
.inputs a b
.outputs k j z
.names a b t
11 1
.conn t k
.barbuf a j
.conn t z
.end
"""
    c = blif.loads(src)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=bool)
    np.testing.assert_array_equal(simulate(c, x, head=False),
                                  np.stack([x[:, 0] & x[:, 1], x[:, 0], x[:, 0] & x[:, 1]], axis=1).astype(np.uint8))


def test_blif_covers_with_dont_cares_and_several_cubes_match_yosys_semantics():
    src = """.model m
.inputs a b c d
.outputs f g h
.default_input_arrival 0 0
.names a b c d f
1-0- 1
-11- 1
0--1 1
.names a c g
0- 0
11 0
.names h
1
.end
"""
    c = blif.loads(src)
    x = ((np.arange(16)[:, None] >> np.arange(4)) & 1).astype(bool)
    a, b, cc, d = x.T
    f = (a & ~cc) | (b & cc) | (~a & d)
    g = ~((~a) | (a & cc))
    np.testing.assert_array_equal(simulate(c, x, head=False), np.stack([f, g, np.ones(16, bool)], 1).astype(np.uint8))


@pytest.mark.parametrize("body, line, words", [
    (".model m\n.inputs a\n.outputs k\n.latch a k 0\n.end\n", 4, ".latch is not supported"),
    (".model m\n.inputs a\n.outputs k\n.subckt foo x=a y=k\n.end\n", 4, ".subckt is not supported"),
    (".model m\n.inputs a\n.outputs k\n.gate AND2 A=a B=a Y=k\n.end\n", 4, ".gate is not supported"),
    (".model m\n.inputs a\n.outputs k\n.names a k\n1 1\n.exdc\n.names a k\n1 1\n.end\n", 6, ".exdc"),
    (".model m\n.inputs a\n.outputs k\n.conn a\n.end\n", 4, "takes a source and a target"),
    (".model m\n.inputs a\n.outputs k\n.names a t\n1 1\n.end\n", 3, "output 'k' is never defined"),
    (".model m\n.inputs a\n.outputs k\n.conn a k\n.conn a k\n.end\n", 5, "defined twice"),
    (".model m\n.inputs a a\n.outputs a\n.end\n", 2, "listed twice"),
    (".model m\n.inputs a\n.outputs k\n.names a k\n2 1\n.end\n", 5, "cover row"),
    (".model m\n.inputs a\n.outputs k\n.frobnicate\n.end\n", 4, "unknown statement"),
    (".inputs a\n", 1, "no .model"),
])
def test_every_blif_error_names_its_line(body, line, words):
    with pytest.raises(FormatError, match=words) as info:
        blif.loads(body, "bad.blif")
    assert info.value.line == line and f"bad.blif:{line}:" in str(info.value)


# -- circuits without inputs ---------------------------------------------------------------------
def test_aiger_constant_output_without_inputs_is_read():
    for data, value in ((b"aag 0 0 0 1 0\n1\n", 1), (b"aag 0 0 0 1 0\n0\n", 0), (b"aig 0 0 0 2 0\n1\n0\n", None)):
        c = aiger.loads(data)
        assert c.num_inputs == 0
        y = simulate(c, np.zeros((3, 0), dtype=bool), head=False)
        expect = [[value]] * 3 if value is not None else [[1, 0]] * 3
        np.testing.assert_array_equal(y, expect)
    assert blif.loads(".model m\n.inputs\n.outputs k\n.names k\n1\n.end\n").num_gates == 1


def test_a_constant_gate_may_name_node_zero_only():
    Circuit(0, [0, 15], [0, 0], [0, 0], [1]).validate()
    with pytest.raises(lgc.ir.CircuitError, match="operand a = 0"):
        Circuit(0, [1], [0], [0], [0]).validate()  # AND has no earlier node to read
    with pytest.raises(lgc.ir.CircuitError, match="operand b = 1"):
        Circuit(0, [15], [0], [1], [0]).validate()


@st.composite
def inputless(draw):
    """Circuits with no inputs: constants first, then any gates over earlier nodes."""
    g = draw(st.integers(1, 25))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    op = rng.integers(0, 16, g)
    op[0] = draw(st.sampled_from([0, 15]))
    hi = np.arange(g)
    a = (rng.random(g) * hi).astype(np.int64)
    b = (rng.random(g) * hi).astype(np.int64)
    if draw(st.booleans()):
        k = draw(st.integers(1, 3))
        return Circuit(0, op, a, b, rng.integers(0, g, k * draw(st.integers(1, 3))), head=GroupSumHead(k, 2.0)).validate()
    return Circuit(0, op, a, b, rng.integers(0, g, draw(st.integers(1, 6)))).validate()


@settings(max_examples=15)
@given(c=inputless(), n=st.sampled_from([0, 1, 5, 64, 65]))
def test_inputless_circuits_work_everywhere(c, n, tmp_path_factory):
    """The oracle's answer from every executable target, every pass and pipeline, every writer/reader."""
    x = np.zeros((n, 0), dtype=bool)
    ref = simulate(c, x)
    for target in lgc.targets():
        np.testing.assert_array_equal(lgc.compile(c, target=target, opt_level=0)(x), ref, err_msg=target)
    for name, fn in PASSES.items():
        if name != "abc":
            assert equivalent(fn(c), c), name
    for level in (1, 2, 3):
        np.testing.assert_array_equal(simulate(lgc.optimize(c, level=level), x), ref)
    d = tmp_path_factory.mktemp("inputless")
    for suffix in (".lgc", ".lgct", ".blif", ".aag", ".aig"):
        lgc.export(c, d / f"c{suffix}")
        back = lgc.load(d / f"c{suffix}")
        np.testing.assert_array_equal(simulate(back, x), ref, err_msg=suffix)
    assert serialize.loads(serialize.dumps(c)) == c and text.loads(text.dumps(c)) == c
    assert c.stats().to_json()["num_inputs" if "num_inputs" in c.stats().to_json() else "inputs"] == 0


def test_inputless_verilog_simulates(tmp_path):
    iverilog, vvp, yosys = _tool("iverilog"), _tool("vvp"), _tool("yosys")
    c = Circuit(0, [15, 0, 6, 7, 12], [0, 0, 0, 1, 3], [0, 0, 1, 0, 3], [0, 1, 2, 3, 4, 0], head=GroupSumHead(2, 1.0))
    ref = simulate(c, np.zeros((1, 0), dtype=bool), head=False)[0]
    src, tb, exe = tmp_path / "c.v", tmp_path / "tb.v", tmp_path / "sim"
    verilog.write(c, src, module="consts")
    tb.write_text(f"module tb; wire [{c.num_outputs - 1}:0] y; wire [3:0] scores; wire [0:0] class_index;\n"
                  "consts dut(.y(y), .scores(scores), .class_index(class_index));\n"
                  'initial begin #1 $display("%b", y); $finish; end endmodule\n')
    r = subprocess.run([iverilog, "-g2012", "-o", str(exe), str(tb), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([vvp, "-n", str(exe)], capture_output=True, text=True).stdout.split()[0]
    np.testing.assert_array_equal([int(ch) for ch in reversed(out)], ref)
    r = subprocess.run([yosys, "-q", "-p", f"read_verilog {src}; synth -top consts"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout
