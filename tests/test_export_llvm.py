"""lgc.export to ``.ll`` and ``.o`` for other machines, run for real and compared bit for bit with
lgc.ir.simulate: the x86-64 objects linked by gcc and run here, aarch64 and riscv64 objects linked
by Debian's cross compilers and run under qemu-user, wasm32 linked by wasm-ld and run by Node;
a thumbv7em (Cortex-M4) object compiled and its sections measured. Each (target, circuit)
executable is built once per module; hypothesis then draws many input batches per run."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, need
from hypothesis import given, settings
from hypothesis import strategies as st

import lgc
from lgc.backends import _llvm_export, llvm
from lgc.ir import Circuit, GroupSumHead, InputEncoder, pack_bits, random_layered_circuit, simulate

DRIVERS = pathlib.Path(__file__).resolve().parent / "drivers"


def _with_constants_and_copies(base: Circuit, outputs: list[int]) -> Circuit:
    """``base`` plus a FALSE and a TRUE gate, with ``outputs`` (negative: -1 the FALSE gate, -2
    the TRUE gate) — constant, pass-through (input) and repeated outputs; every third output negated."""
    n, g = base.num_inputs, base.num_gates
    op = np.concatenate([base.op, [0, 15]]).astype(np.uint8)
    a = np.concatenate([base.a, [0, 0]]).astype(np.int32)
    b = np.concatenate([base.b, [0, 0]]).astype(np.int32)
    outs = [n + g + (-o - 1) if o < 0 else o for o in outputs]
    return Circuit(n, op, a, b, outs, output_negated=np.arange(len(outs)) % 3 == 1, head=base.head,
                   input_encoder=base.input_encoder)


def _cases() -> dict[str, Circuit]:
    rng = np.random.default_rng(7)
    head = random_layered_circuit(100, [120, 80], num_classes=5, seed=1)
    plain = random_layered_circuit(70, [60, 40], seed=2)
    g = plain.num_inputs + plain.num_gates
    bits = _with_constants_and_copies(plain, [g - 1, 3, -1, g - 2, -2, 69, g - 1, 0])
    enc_base = random_layered_circuit(40, [48, 24], num_classes=3, seed=3)
    outs = enc_base.outputs.tolist()
    outs[0], outs[5], outs[9], outs[13] = -2, 7, -1, outs[12]  # constant, pass-through and repeated outputs
    encoded = _with_constants_and_copies(enc_base, outs).replace(
        input_encoder=InputEncoder(rng.integers(0, 12, size=40), rng.normal(size=40), 12))
    return {"head": head, "bits": bits, "encoder": encoded}


CASES = _cases()
#: name -> (triple, features, C compiler or "wasm-ld", command prefix that runs the program)
TARGETS = {
    "x86_64": ("x86_64-linux-gnu", "", "gcc", []),
    # AVX-512's width and schedule (vector_words=8, fused 3-input gates) on any x86-64
    "x86_64-8words": ("x86_64-linux-gnu", "", "gcc", []),
    "x86_64-avx2": ("x86_64-linux-gnu", "+avx2", "gcc", []),
    "aarch64": ("aarch64-linux-gnu", "", "aarch64-linux-gnu-gcc", ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]),
    "riscv64": ("riscv64-linux-gnu", "", "riscv64-linux-gnu-gcc", ["qemu-riscv64", "-L", "/usr/riscv64-linux-gnu"]),
    "wasm32": ("wasm32-unknown-unknown", "", "wasm-ld", ["node"]),
    "wasm32-simd": ("wasm32-unknown-unknown", "+simd128", "wasm-ld", ["node"]),
}


def _missing(target: str) -> str | None:
    triple, features, linker, runner = TARGETS[target]
    if target == "x86_64-avx2" and "avx2" not in llvm.cpu_flags():
        return "this CPU lacks avx2"
    tools = [linker, *runner[:1]]
    gone = [t for t in tools if shutil.which(t) is None]
    if gone:
        return f"{', '.join(gone)} not on PATH"
    sysroot = runner[2] if len(runner) > 2 else None
    if sysroot and not pathlib.Path(sysroot).is_dir():
        return f"no {sysroot} (install libc6-dev for the cross target)"
    return None


def _require(target: str) -> None:
    need("llvm", llvm.available())
    why = _missing(target)
    if target == "x86_64-avx2" and why:
        pytest.skip(why)
    if target.startswith("x86_64") and why:
        need("c-compiler", why)
    need("cross", why)


_BUILT: dict[tuple[str, str], list[str]] = {}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("export-llvm")


def _program(target: str, case: str, workdir: pathlib.Path) -> list[str]:
    """The command that runs ``case``'s network exported for ``target`` (built once)."""
    key = (target, case)
    if key in _BUILT:
        return _BUILT[key]
    triple, features, linker, runner = TARGETS[target]
    d = workdir / f"{target}-{case}"
    d.mkdir(exist_ok=True)
    facts = _llvm_export.export(CASES[case], d / "net.o", kind="o", triple=triple, features=features,
                                vector_words=8 if target == "x86_64-8words" else None, fuse=target == "x86_64-8words")
    if linker == "wasm-ld":
        out = d / "net.wasm"
        subprocess.run([linker, "--no-entry", "--export-all", "--export=__heap_base",
                        str(d / "net.o"), "-o", str(out)], check=True, capture_output=True, text=True)
        c = CASES[case]
        per = c.head.k if c.head is not None else c.num_outputs
        nf = c.input_encoder.num_features if c.input_encoder is not None else 0
        meta = f"{int(c.head is not None)} {c.num_inputs} {per} {nf} {facts['workspace_bytes']}"
        cmd = [*runner, str(DRIVERS / "net_driver.mjs"), str(out), meta]
    else:
        exe = d / "driver"
        proc = subprocess.run([linker, "-std=c99", "-O1", "-Wall", "-Werror", "-I", str(d), str(DRIVERS / "net_driver.c"),
                               str(d / "net.o"), "-o", str(exe)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        cmd = [*runner, str(exe)]
    _BUILT[key] = cmd
    return cmd


def _requests(circuit: Circuit, sizes: list[int], rng: np.random.Generator) -> tuple[bytes, list[np.ndarray]]:
    """Requests for the driver protocol (see tests/drivers/net_driver.c) and the oracle's answers."""
    blob, want = [], []
    for n in sizes:
        x = rng.random((n, circuit.num_inputs)) < rng.random()
        # bool bytes are any nonzero value, as numpy's .view(bool) makes them
        raw = np.where(x, rng.integers(1, 256, size=x.shape), 0).astype(np.uint8)
        blob += [b"b", np.uint32(n).tobytes(), raw.tobytes()]
        want.append(simulate(circuit, raw.view(bool)))
        blob += [b"p", np.uint32(n).tobytes(), np.ascontiguousarray(pack_bits(x).words).tobytes()]
        want.append(simulate(circuit, x))
        if circuit.input_encoder is not None:
            feats = rng.normal(size=(n, circuit.input_encoder.num_features))
            blob += [b"e", np.uint32(n).tobytes(), feats.astype("<f8").tobytes()]
            want.append(simulate(circuit, feats))
    return b"".join(blob), want


#: (target, circuit) pairs run: every circuit on the main targets, fewer where only the width differs
RUNS = [(t, c) for t in ("x86_64", "x86_64-8words", "aarch64") for c in CASES] + \
    [("x86_64-avx2", "head"), ("riscv64", "head"), ("riscv64", "encoder"), ("wasm32", "bits"),
     ("wasm32-simd", "head"), ("wasm32-simd", "encoder")]


@pytest.mark.parametrize("target,case", RUNS)
def test_object_runs_bit_exact_on_its_machine(target, case, workdir):
    _require(target)
    circuit = CASES[case]
    cmd = _program(target, case, workdir)  # built once, outside hypothesis: a build error is not shrunk
    dtype = np.dtype("<i4") if circuit.head is not None else np.dtype(np.uint8)

    @settings(max_examples=3)
    @given(extra=st.lists(st.integers(0, 700), max_size=3), seed=st.integers(0, 2**32 - 1))
    def check(extra, seed):
        blob, want = _requests(circuit, [1, 63, 64, 65, 1000, *extra], np.random.default_rng(seed))
        proc = subprocess.run(cmd, input=blob, capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        got = np.frombuffer(proc.stdout, dtype=dtype)
        assert got.size == sum(w.size for w in want)
        at = 0
        for w in want:
            assert np.array_equal(got[at:at + w.size].reshape(w.shape), w)
            at += w.size

    check()


def test_cortex_m4_object_has_code_and_tables(tmp_path):
    need("llvm", llvm.available())
    circuit = CASES["head"]
    lgc.export(circuit, tmp_path / "net.o", triple="thumbv7em-none-eabi", cpu="cortex-m4")
    data = (tmp_path / "net.o").read_bytes()
    assert data[:4] == b"\x7fELF" and int.from_bytes(data[18:20], "little") == 40  # EM_ARM
    sizes = _llvm_export.section_sizes(data)
    assert sizes["code"] > 0
    # the tables are constant data (read-only sections): several int32 per gate
    assert sizes["data"] >= 4 * circuit.num_gates and sizes["writable"] == 0
    header = (tmp_path / "net.h").read_text()
    assert "#define NET_VECTOR_WORDS 1" in header and "size_t net_workspace_bytes(void);" in header


def test_textual_ir_parses_verifies_and_names_the_abi(tmp_path):
    need("llvm", llvm.available())
    import llvmlite.binding as binding
    circuit = CASES["encoder"]
    lgc.export(circuit, tmp_path / "model.ll", triple="aarch64-linux-gnu")
    text = (tmp_path / "model.ll").read_text()
    mod = binding.parse_assembly(text)
    mod.verify()
    assert mod.triple == "aarch64-linux-gnu"
    names = {f.name for f in mod.functions if not f.is_declaration and f.linkage.name == "external"}
    assert names == {"model_scores", "model_scores_packed", "model_encode", "model_workspace_bytes"}
    header = (tmp_path / "model.h").read_text()
    for name in names:
        assert f"{name}(" in header
    assert "#define MODEL_NUM_FEATURES 12" in header


def test_unknown_triple_and_bad_options_are_value_errors(tmp_path):
    need("llvm", llvm.available())
    with pytest.raises(ValueError, match="triple"):
        lgc.export(CASES["head"], tmp_path / "net.o", triple="nonsense-unknown-none")
    with pytest.raises(ValueError, match="big-endian"):
        lgc.export(CASES["head"], tmp_path / "net.o", triple="powerpc64-linux-gnu")
    with pytest.raises(ValueError, match="vector_words"):
        lgc.export(CASES["head"], tmp_path / "net.o", vector_words=3)


def test_cli_exports_an_aarch64_object(tmp_path):
    need("llvm", llvm.available())
    lgc.export(CASES["head"], tmp_path / "net.lgc")
    proc = subprocess.run([sys.executable, "-m", "lgc", "export", str(tmp_path / "net.lgc"), "-o", str(tmp_path / "a.o"),
                           "--triple", "aarch64-linux-gnu", "--cpu", "cortex-a72", "--features", "+neon"],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    data = (tmp_path / "a.o").read_bytes()
    assert data[:4] == b"\x7fELF" and int.from_bytes(data[18:20], "little") == 183  # EM_AARCH64
    assert "int a_scores(const uint8_t *x" in (tmp_path / "a.h").read_text()
