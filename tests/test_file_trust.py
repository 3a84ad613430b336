"""Files are untrusted (issue 16, items 3 and 5): size claims cost no memory beyond the file, damage
is an error and never a different circuit, and every loader fails with FormatError/CircuitError.

Memory is measured in a child process (tracemalloc peak, which numpy reports to) under an address
space limit, so a regression fails the test instead of exhausting the machine."""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import struct
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest

import lgc
from lgc.ir import CircuitError, random_layered_circuit, serialize
from lgc.ir.formats import FormatError
from conftest import REPO

MB = 1 << 20
#: what a refused claim may cost: parsing a small file, not the claim
BOUND = 40 * MB
#: growth of the resident set a refused file may cause (first-use allocations of numpy/torch included)
RSS_BOUND = 200 * MB


def _peak_memory(code: str, paths: list) -> list[dict]:
    """Run ``code`` (which reads ``path``) in one child for each of ``paths``: per path, the
    tracemalloc peak (numpy and Python), the growth of the peak resident set (everything, torch
    included; cumulative) and the error raised."""
    paths = [str(p) for p in paths]
    child = textwrap.dedent(f"""
        import json, resource, sys, tracemalloc, warnings
        import numpy as np, lgc
        from lgc.cli.main import main as cli_main
        from lgc.ir import CircuitError
        {"import torch, lgc.frontend" if paths[0].endswith(".pt") else ""}
        vm = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), resource.RLIM_INFINITY))  # +1 GiB at most
        warnings.simplefilter("ignore")
        tracemalloc.start()
        results = []
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        for path in {paths!r}:
            tracemalloc.reset_peak()
            error = None
            try:
{textwrap.indent(textwrap.dedent(code), " " * 16)}
            except CircuitError as e:  # FormatError included
                error = type(e).__name__ + ": " + str(e)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0  # torch's allocations too
            results.append({{"path": path, "peak": tracemalloc.get_traced_memory()[1], "rss": rss, "error": error}})
        print(json.dumps(results))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _lgc_blob(header: dict, payload: bytes) -> bytes:
    head = json.dumps(header).encode()
    body = serialize.MAGIC + struct.pack("<I", len(head)) + head + payload
    return body + hashlib.sha256(body).digest()


def _zip_member(zf: zipfile.ZipFile, name: str, dtype: str, shape: tuple, body_bytes: int, compress: bool) -> None:
    """A .npy member whose header claims ``shape`` and whose body is ``body_bytes`` zero bytes,
    written in chunks (the test itself never holds the claimed array)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    info = zipfile.ZipInfo(name + ".npy")
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zf.open(info, "w", force_zip64=True) as f:
        f.write(buf.getvalue())
        chunk = bytes(1 << 20)
        left = body_bytes
        while left > 0:
            f.write(chunk[:min(left, len(chunk))])
            left -= len(chunk)


def _crafted_payload(gates: int, *, compress: bool, held: int | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        for name, dtype in (("op", "u1"), ("a", "<i4"), ("b", "<i4")):
            size = gates * np.dtype(dtype).itemsize
            _zip_member(zf, name, dtype, (gates,), size if held is None else held, compress)
        _zip_member(zf, "outputs", "<i4", (1,), 4, compress)
    return out.getvalue()


# -- size claims ------------------------------------------------------------------------------------
CLAIMS = {
    # the examples: a 40-byte text circuit claiming 200M inputs, read by `lgc inspect`
    "text-inputs.lgct": b"lgc-text 1\ninputs 200000000\noutputs 0\n",
    "text-encoder.lgct": b"lgc-text 1\ninputs 1\nencoder 900000000\nenc 0 0 0.5\noutputs 0\n",
    # a 30-byte binary AIGER header with a huge M (as inputs, as ANDs, as outputs)
    "aig-inputs.aig": b"aig 900000000 900000000 0 0 0\n",
    "aig-ands.aig": b"aig 900000000 0 0 0 900000000\n",
    "aig-outputs.aig": b"aig 1 1 0 900000000 0\n2\n",
    "aag-m.aag": b"aag 900000000 0 0 0 0\n",
    "aag-lines.aag": b"aag 900000000 300000000 0 300000000 300000000\n2\n",
    "aag-literal.aag": b"aag 1 1 0 1 0\n2\n1799999999\n",
    # an encoder width in lgc's comment (found by the AIGER fuzz test)
    "aag-encoder.aag": b'aag 1 1 0 1 0\n2\n2\nc\nlgc {"encoder": {"feature": [0], "threshold": [0.5], '
                       b'"num_features": 900000000}}\n',
    "blif-encoder.blif": b'# lgc {"encoder": {"feature": [0], "threshold": [0.5], "num_features": 900000000}}\n'
                         b'.model m\n.inputs a\n.outputs a\n.end\n',
}


def test_size_claims_cost_no_memory(tmp_path):
    paths = []
    for name, data in CLAIMS.items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    # through `lgc inspect` (the route) and lgc.load
    code = "assert cli_main(['inspect', path]) == 2\nlgc.load(path)"
    for out in _peak_memory(code, paths):
        assert out["error"] is not None and out["peak"] < BOUND and out["rss"] < RSS_BOUND, out


def test_text_claim_is_named(tmp_path):
    path = tmp_path / "c.lgct"
    path.write_bytes(CLAIMS["text-inputs.lgct"])
    with pytest.raises(FormatError, match=r"c.lgct:2: inputs = 200000000 is implausible"):
        lgc.load(path)
    path.write_bytes(CLAIMS["aig-inputs.aig"])
    with pytest.raises(FormatError, match=r":1: I = 900000000 is implausible"):
        lgc.ir.formats.aiger.load(path)


def test_lgc_payload_claims_cost_no_memory(tmp_path):
    """The issue's .lgc whose 876 KB deflated payload expands to 100M gates (2M here: they deflate
    alike), a stored member whose .npy header claims more than it holds, and 2**30 inputs claimed."""
    paths, words = [], []
    for case, match in (("compressed", "compressed"), ("shape-claim", "claims shape"),
                        ("inputs-claim", "num_inputs = 1073741824 is implausible")):
        gates = 2_000_000 if case == "compressed" else 100_000_000
        if case == "compressed":
            payload = _crafted_payload(gates, compress=True)
        elif case == "shape-claim":
            payload = _crafted_payload(gates, compress=False, held=64)
        else:
            gates, buf = 1, io.BytesIO()
            np.savez(buf, op=np.zeros(1, np.uint8), a=np.zeros(1, np.int32), b=np.zeros(1, np.int32),
                     outputs=np.zeros(1, np.int32))
            payload = buf.getvalue()
        assert len(payload) < MB
        header = {"format": "lgc-circuit", "version": serialize.FORMAT_VERSION, "payload_bytes": len(payload),
                  "num_inputs": 2**30 if case == "inputs-claim" else 1, "num_gates": gates, "num_outputs": 1,
                  "head": None, "input_encoder": None, "meta": {}}
        paths.append(tmp_path / f"{case}.lgc")
        paths[-1].write_bytes(_lgc_blob(header, payload))
        words.append(match)
    for out, match in zip(_peak_memory("lgc.load(path)", paths), words):
        assert out["error"] is not None and match in out["error"] and out["peak"] < BOUND and out["rss"] < RSS_BOUND, out


def _small_model():
    torch = pytest.importorskip("torch")
    from lgc.frontend import GroupSum, LogicLayer
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), LogicLayer(8, 12, implementation="python"),
                               LogicLayer(12, 6, implementation="python"), GroupSum(2, 1.0))


def test_checkpoint_config_claims_cost_no_memory(tmp_path):
    """The issue's 4 KB checkpoint whose config makes build_model allocate 4.8 GB before its tensors
    are compared with it."""
    torch = pytest.importorskip("torch")
    from lgc.frontend import load_checkpoint, model_config
    model = _small_model()
    paths = []
    for name, change in (("out_dim", lambda cfg: cfg["layers"].__setitem__(0, {**cfg["layers"][0], "out_dim": 50_000_000})),
                         ("in_dim", lambda cfg: cfg.__setitem__("in_dim", 3_000_000_000))):
        cfg = model_config(model)
        change(cfg)
        path = tmp_path / f"{name}.pt"
        torch.save({"format": "lgc-checkpoint", "version": 1, "config": cfg,
                    "state_dict": dict(model.state_dict()), "extra": None}, path)
        assert path.stat().st_size < 8192
        paths.append(path)
        with pytest.raises(FormatError, match=name):
            load_checkpoint(path)
    for out in _peak_memory("lgc.frontend.load_checkpoint(path)", paths):
        assert out["error"] is not None and out["peak"] < BOUND and out["rss"] < RSS_BOUND, out


# -- integrity --------------------------------------------------------------------------------------
def test_every_header_bit_flip_is_an_error_or_the_same_circuit():
    c = random_layered_circuit(12, [10, 6], num_classes=2, seed=5)
    good = serialize.dumps(c, meta={"name": "net"})
    header, _ = serialize.read_header(good)
    header_end = len(serialize.MAGIC) + 4 + len(json.dumps(header, sort_keys=True).encode())
    rng = random.Random(0)
    positions = list(range(header_end * 8)) + rng.sample(range(header_end * 8, len(good) * 8), 400)
    same = 0
    for bit in positions:
        bad = bytearray(good)
        bad[bit // 8] ^= 1 << (bit % 8)
        try:
            back = serialize.loads(bytes(bad))
        except CircuitError:
            continue
        assert back == c and back.meta == {"name": "net"}, f"bit {bit} loaded as a different circuit"
        same += 1
    assert same == 0  # the digest covers every byte: no flip goes unnoticed


def _v1_blob(c) -> bytes:
    """A file as lgc wrote it before format 2 (checksum over the payload only)."""
    buf = io.BytesIO()
    np.savez(buf, op=c.op, a=c.a, b=c.b, outputs=c.outputs)
    payload = buf.getvalue()
    header = {"format": "lgc-circuit", "version": 1, "sha256": hashlib.sha256(payload).hexdigest(),
              "payload_bytes": len(payload), **c.header_json(), "meta": {}}
    head = json.dumps(header, sort_keys=True).encode()
    return serialize.MAGIC + struct.pack("<I", len(head)) + head + payload


def test_version_1_files_still_load_with_a_warning():
    c = random_layered_circuit(12, [10, 6], num_classes=2, seed=5)
    old = _v1_blob(c)
    with pytest.warns(UserWarning, match="version-1 .lgc file"):
        assert serialize.loads(old) == c
    flipped = bytearray(old)
    flipped[-30] ^= 4  # payload damage is still caught by its checksum
    with warnings.catch_warnings(), pytest.raises(CircuitError):
        warnings.simplefilter("ignore")
        serialize.loads(bytes(flipped))
    lied = old.replace(b'"num_gates": 16', b'"num_gates": 17')  # a header count the arrays contradict
    with warnings.catch_warnings(), pytest.raises(CircuitError, match="num_gates"):
        warnings.simplefilter("ignore")
        serialize.loads(lied)


def test_checkpoint_bit_flips_are_errors_or_the_same_circuit(tmp_path):
    """Single-bit flips over a whole small .pt (7 of 300 loaded as a different circuit before)."""
    pytest.importorskip("torch")
    from lgc.frontend import load_checkpoint, save_checkpoint
    path = tmp_path / "m.pt"
    save_checkpoint(_small_model(), path)
    ref = lgc.lower(load_checkpoint(path))
    good = path.read_bytes()
    rng = random.Random(1)
    flips = 300 if os.environ.get("CI") or os.environ.get("HYPOTHESIS_PROFILE") in ("ci", "thorough") else 100
    bad_path = tmp_path / "bad.pt"
    outcomes = {"error": 0, "same": 0}
    for bit in rng.sample(range(len(good) * 8), flips):
        bad = bytearray(good)
        bad[bit // 8] ^= 1 << (bit % 8)
        bad_path.write_bytes(bytes(bad))
        try:
            back = lgc.lower(load_checkpoint(bad_path))
        except FormatError:
            outcomes["error"] += 1
            continue
        assert back == ref, f"bit {bit} (byte {bit // 8}) loaded as a different circuit"
        outcomes["same"] += 1
    assert outcomes["error"] > flips // 2, outcomes


# -- one error contract -----------------------------------------------------------------------------
def _corpus(tmp_path) -> list:
    """Bad files for every loader: empty, binary garbage, truncations, other formats' bytes."""
    c = random_layered_circuit(10, [12, 6], num_classes=2, seed=2)
    files = []
    goods = {}
    for suffix in (".lgc", ".lgct", ".txt", ".blif", ".aag", ".aig"):
        p = tmp_path / f"good{suffix}"
        lgc.export(c, p)
        goods[suffix] = p.read_bytes()
    garbage = [b"", b"\x00" * 64, bytes(range(256)), "ünïcödé\n".encode("utf-16"), b"\xff\xfe\xfa"]
    for suffix, good in goods.items():
        variants = garbage + [good[:len(good) // 2], good[:9], good + b"\x00trailing", good[::-1]]
        variants += [g for s, g in goods.items() if s != suffix]
        for i, data in enumerate(variants):
            p = tmp_path / f"bad{i}{suffix}"
            p.write_bytes(data)
            files.append(p)
    return files


def test_every_loader_raises_only_format_or_circuit_errors(tmp_path):
    from lgc.compat.difflogic import CompiledLogicNet
    from lgc.ir.formats import aiger, blif, text
    readers = {".lgc": [serialize.load], ".lgct": [text.load], ".txt": [text.load], ".blif": [blif.load],
               ".aag": [aiger.load], ".aig": [aiger.load]}
    checked = 0
    for path in _corpus(tmp_path):
        for read in [lgc.load, CompiledLogicNet.load, *readers[path.suffix]]:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    read(path)
            except CircuitError:  # FormatError is one
                checked += 1
            except Exception as e:  # pragma: no cover - the failure message names the escapee
                pytest.fail(f"{path.name}: {type(e).__name__} escaped: {e}")
    assert checked > 100


def test_checkpoint_loader_raises_only_format_errors(tmp_path):
    torch = pytest.importorskip("torch")
    from lgc.frontend import load_checkpoint, model_config, save_checkpoint
    model = _small_model()
    path = tmp_path / "m.pt"
    save_checkpoint(model, path)
    good = path.read_bytes()
    cfg = model_config(model)
    cases = {"empty": b"", "garbage": bytes(range(256)), "half": good[: len(good) // 2],
             "lgc-file": serialize.dumps(lgc.ir.example_circuit())}
    for name, data in cases.items():
        (tmp_path / f"{name}.pt").write_bytes(data)
    payloads = {
        "not-dict": [1, 2, 3],
        "no-format": {"config": cfg},
        "bad-version": {"format": "lgc-checkpoint", "version": "1", "config": cfg, "state_dict": {}},
        "bad-config": {"format": "lgc-checkpoint", "version": 1, "config": {"in_dim": "x"}, "state_dict": {}},
        "bad-layers": {"format": "lgc-checkpoint", "version": 1, "config": {**cfg, "layers": "oops"},
                       "state_dict": dict(model.state_dict())},
        "missing-tensors": {"format": "lgc-checkpoint", "version": 1, "config": cfg, "state_dict": {}},
        "wiring-out-of-range": {"format": "lgc-checkpoint", "version": 1, "config": cfg,
                                "state_dict": {**model.state_dict(), "1.index_a": torch.full((12,), 99)}},
        "nan-logits": {"format": "lgc-checkpoint", "version": 1, "config": cfg,
                       "state_dict": {**model.state_dict(), "2.weights": torch.full((6, 16), float("nan"))}},
    }
    for name, payload in payloads.items():
        torch.save(payload, tmp_path / f"{name}.pt")
    deflated = tmp_path / "deflated.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    for name in [*cases, *payloads, "deflated"]:
        with pytest.raises(FormatError):
            load_checkpoint(tmp_path / f"{name}.pt")


@pytest.mark.parametrize("argv, words", [
    (["inspect", "{bad}.aig"], "invalid deltas"),
    (["inspect", "{bad}.pt"], "not a readable lgc checkpoint"),
    (["inspect", "{bad}.xyz"], "give the file one of these suffixes"),
    (["inspect", "{dir}"], "Is a directory"),
    (["inspect", "{missing}.lgc"], "No such file"),
    (["compile", "{bad}.lgct", "-o", "{out}.lgc"], "expected 'lgc-text 1'"),
    (["export", "example", "-o", "{out}.vhdl"], "pass --format"),
    (["export", "{bad}.blif", "-o", "{out}.v"], "expected .model first"),
    (["bench", "{bad}.lgc", "--targets", "numpy"], "not an .lgc file"),
])
def test_cli_file_errors_exit_2_with_one_line(tmp_path, capsys, argv, words):
    from lgc.cli.main import main
    bad = tmp_path / "bad"
    for suffix, data in ((".aig", b"aig 3 2 0 1 1\n6\n\x00\x00"), (".pt", b"junk"), (".xyz", b"junk"),
                         (".lgct", b"hello\n"), (".blif", b"junk\n"), (".lgc", b"junk")):
        (tmp_path / f"bad{suffix}").write_bytes(data)
    (tmp_path / "dir.lgc").mkdir()
    argv = [a.format(bad=bad, dir=tmp_path / "dir.lgc", missing=tmp_path / "missing", out=tmp_path / "out")
            for a in argv]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and lines[0].startswith(f"lgc {argv[0]}: error:"), lines


def test_hints_name_options_that_exist(tmp_path):
    path = tmp_path / "net.weird"
    lgc.export(lgc.ir.example_circuit(), path, format="aiger")  # export's format= exists
    with pytest.raises(FormatError, match=r"pass format= \(lgc, text, blif, aiger\)"):
        lgc.load(path)
    assert lgc.passes.equivalent(lgc.load(path, format="aiger"), lgc.ir.example_circuit())  # and load's
    with pytest.raises(FormatError, match="verilog format cannot be read back"):
        lgc.load(tmp_path / "net.v")
    from lgc.cli.main import build_parser
    assert build_parser().parse_args(["export", "example", "-o", "x", "--format", "blif"]).format == "blif"
