"""lgc.export(circuit, "net.c"): the emitted C99, compiled with strict flags and a small C driver
(tests/c_export_driver.c), natively and for aarch64/riscv64 under qemu-user, bit for bit against
lgc.ir.simulate. Each fixed circuit is built once per session; hypothesis draws only batches."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lgc
from lgc.backends import c_source
from lgc.ir import Circuit, GroupSumHead, InputEncoder, pack_bits, random_layered_circuit, simulate

from conftest import need

DRIVER = pathlib.Path(__file__).with_name("c_export_driver.c")
CROSS = {"aarch64": ("aarch64-linux-gnu-gcc", "qemu-aarch64", "/usr/aarch64-linux-gnu"),
         "riscv64": ("riscv64-linux-gnu-gcc", "qemu-riscv64", "/usr/riscv64-linux-gnu")}
MODES = ("bytes", "packed", "features")


def _special_outputs(c: Circuit, rng: np.random.Generator) -> Circuit:
    """``c`` with constant outputs (FALSE, TRUE), a copy and a negation of an input, an output that
    is an input, a negated gate and a repeated output among its outputs (their count unchanged), and
    about a third of its outputs negated literals."""
    n, g = c.num_inputs, c.num_gates
    last = int(c.outputs[-1])
    op = np.concatenate([c.op, [0, 15, 3, 12, 10]]).astype(np.uint8)
    a = np.concatenate([c.a, [0, 0, 1, last, 0]]).astype(np.int32)
    b = np.concatenate([c.b, [0, 0, 0, 0, 2]]).astype(np.int32)
    outs = c.outputs.copy()
    new = [n + g, n + g + 1, n + g + 2, n + g + 3, n + g + 4, 2, int(outs[1])]
    pos = rng.choice(len(outs), size=len(new), replace=False)
    outs[pos] = new
    negated = rng.random(len(outs)) < 0.3
    return Circuit(n, op, a, b, outs, output_negated=negated, head=c.head, input_encoder=c.input_encoder).validate()


def _encoder(num_inputs: int, num_features: int, rng: np.random.Generator) -> InputEncoder:
    return InputEncoder(rng.integers(0, num_features, size=num_inputs), np.round(rng.normal(size=num_inputs), 3),
                        num_features)


def fixed_circuits() -> dict[str, tuple[Circuit, dict]]:
    """A handful of circuits (name -> (circuit, export options)) covering head / no head, encoder /
    none, constant and pass-through outputs, no gates at all, and straight-line gates."""
    rng = np.random.default_rng(17)
    head = _special_outputs(random_layered_circuit(37, [90, 60, 40], num_classes=4, tau=2.0, seed=1), rng)
    bits = _special_outputs(random_layered_circuit(20, [50, 30], seed=2), rng)
    tables = {"straight_line": False}   # these circuits are small: by default they would be straight-line code
    return {
        "head_encoder": (head.replace(input_encoder=_encoder(37, 11, rng)), tables),
        "head": (head, tables),
        "bits": (bits, tables),
        "bits_encoder": (bits.replace(input_encoder=_encoder(20, 6, rng)), tables),
        "no_gates": (Circuit(5, outputs=[0, 3, 3, 1, 4, 2], head=GroupSumHead(2, 1.0)), {}),
        "no_gates_bits": (Circuit(9, outputs=[8, 0, 0]), {}),
        "straight_line": (head, {"straight_line": True}),
        "straight_line_bits_encoder": (bits.replace(input_encoder=_encoder(20, 6, rng)), {}),   # by size
    }


def _build(tmp: pathlib.Path, name: str, circuit: Circuit, options: dict, cc: str,
           flags: tuple[str, ...] = (*c_source.STRICT_FLAGS, "-O2")) -> pathlib.Path:
    d = tmp / name
    d.mkdir(parents=True, exist_ok=True)
    lgc.export(circuit, d / "net.c", **options)
    exe = d / f"driver-{os.path.basename(cc)}"
    cmd = [cc, *flags, f"-I{d}", str(d / "net.c"), str(DRIVER), "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr[-3000:]}"
    return exe


def _record(circuit: Circuit, mode: str, n: int, seed: int, canonical: bool) -> tuple[bytes, np.ndarray]:
    """One driver record and the oracle's answer for it. Odd seeds pass a caller workspace at an
    odd address, even ones NULL; packed words get a row stride of ceil(n / 64) + seed % 3."""
    rng = np.random.default_rng(seed)
    wstride = 0
    if mode == "features" and circuit.input_encoder is not None:
        f = rng.normal(size=(n, circuit.input_encoder.num_features)) * 1.5
        f[rng.random(f.shape) < 0.2] = 0.0
        payload, code, expect = f.tobytes(), 2, simulate(circuit, f)
    else:
        x = rng.random((n, circuit.num_inputs)) < 0.5
        expect = simulate(circuit, x)
        if mode == "packed":
            words = pack_bits(x).words
            wstride = words.shape[1] + seed % 3
            strided = rng.integers(0, 2**63, size=(circuit.num_inputs, wstride), dtype=np.uint64)
            strided[:, :words.shape[1]] = words    # the words past each row's end are garbage, never read
            payload, code = strided.tobytes(), 1
        else:
            raw = x.astype(np.uint8) if canonical else x * rng.integers(1, 256, size=x.shape).astype(np.uint8)
            payload, code = raw.tobytes(), 0
    return np.array([code, n, wstride, seed % 2], dtype=np.int64).tobytes() + payload, expect


def _run(cmd_prefix: list[str], exe: pathlib.Path, circuit: Circuit, records: list[tuple[bytes, np.ndarray]],
         tmp: pathlib.Path) -> None:
    inp, out = tmp / "in.bin", tmp / "out.bin"
    inp.write_bytes(b"".join(r for r, _ in records))
    proc = subprocess.run([*cmd_prefix, str(exe), str(inp), str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data, pos = out.read_bytes(), 0
    for _, expect in records:
        rc = int(np.frombuffer(data, np.int64, 1, pos)[0])
        pos += 8
        dtype = np.int32 if circuit.head is not None else np.uint8
        got = np.frombuffer(data, dtype, expect.size, pos).reshape(expect.shape)
        pos += got.nbytes
        assert rc == 0
        assert np.array_equal(got, expect), (got, expect)
    assert pos == len(data)


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    cc = shutil.which("gcc")
    need("c-compiler", None if cc else "no gcc on PATH")
    tmp = tmp_path_factory.mktemp("export_c")
    return {name: (c, _build(tmp, name, c, opts, cc)) for name, (c, opts) in fixed_circuits().items()}, tmp


@given(name=st.sampled_from(sorted(fixed_circuits())), mode=st.sampled_from(MODES),
       n=st.one_of(st.sampled_from([1, 63, 64, 65, 1000]), st.integers(0, 300)),
       seed=st.integers(0, 2**32 - 1), canonical=st.booleans())
def test_native_matches_oracle(native, name, mode, n, seed, canonical):
    built, tmp = native
    circuit, exe = built[name]
    _run([], exe, circuit, [_record(circuit, mode, n, seed, canonical)], tmp)


@pytest.mark.parametrize("arch", sorted(CROSS))
def test_cross_compiled_under_qemu(arch, tmp_path):
    cc, qemu, sysroot = CROSS[arch]
    missing = [t for t in (cc, qemu) if shutil.which(t) is None]
    need("cross", f"{', '.join(missing)} not on PATH" if missing else None)
    for name in ("head_encoder", "bits", "straight_line", "straight_line_bits_encoder"):
        circuit, opts = fixed_circuits()[name]
        exe = _build(tmp_path, name, circuit, opts, shutil.which(cc))
        records = [_record(circuit, mode, n, seed, canonical=seed % 2 == 0)
                   for seed, (mode, n) in enumerate((m, n) for m in MODES for n in (1, 63, 64, 65, 1000))]
        _run([shutil.which(qemu), "-L", sysroot], exe, circuit, records, tmp_path)


def test_same_file_runs_the_avx2_kernel(tmp_path):
    """The emitted file built with -std=gnu11 -mavx2 -DVW=4 (the cpu-avx2 kernel), tables and straight-line."""
    from lgc.backends._common import cpu_flags
    cc = shutil.which("gcc")
    need("c-compiler", None if cc else "no gcc on PATH")
    if "avx2" not in cpu_flags():
        pytest.skip("this CPU lacks AVX2")
    for name in ("head_encoder", "straight_line", "bits"):
        circuit, opts = fixed_circuits()[name]
        exe = _build(tmp_path, name, circuit, opts, cc, ("-std=gnu11", "-Wall", "-Werror", "-O2", "-mavx2", "-DVW=4"))
        records = [_record(circuit, mode, n, seed, canonical=seed % 2 == 0)  # odd seeds: bytes other than 0/1
                   for seed, (mode, n) in enumerate((m, n) for m in MODES for n in (1, 63, 64, 65, 257, 1000))]
        _run([], exe, circuit, records, tmp_path)


def test_same_file_compiles_as_the_avx512_kernel(tmp_path):
    """-DVW=8 with the cpu-avx512 target's flags (mask packing, 3-input gate loops) compiles cleanly;
    running it needs an AVX-512 host, where tests/test_backends_cpu.py runs the same kernel."""
    cc = shutil.which("gcc")
    need("c-compiler", None if cc else "no gcc on PATH")
    from lgc.backends.cpu_c import _CONFIG, _EXTRAS
    flags = ["-DVW=8", *_CONFIG["cpu-avx512"][1], *(f for _, fl in _EXTRAS["cpu-avx512"] for f in fl)]
    for name in ("head_encoder", "straight_line"):   # -O0: the warnings that matter come from the front end
        circuit, opts = fixed_circuits()[name]
        lgc.export(circuit, tmp_path / f"{name}.c", **opts)
        subprocess.run([cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O0", *flags, "-c", f"{name}.c"],
                       cwd=tmp_path, check=True)


def test_header_names_the_abi_and_suffix_dispatch(tmp_path):
    circuit, _ = fixed_circuits()["head_encoder"]
    lgc.export(circuit, tmp_path / "my-model.c")
    h = (tmp_path / "my-model.h").read_text()
    for sym in ("int my_model_scores(const uint8_t *x, size_t n, int32_t *scores, void *workspace);",
                "int my_model_scores_packed(const uint64_t *words, size_t wstride, size_t n, int32_t *scores, "
                "void *workspace);", "size_t my_model_workspace_bytes(void);",
                "void my_model_encode(const double *features, size_t n, uint8_t *x);", "my_model_scores_features(",
                "#define MY_MODEL_NUM_INPUTS 37", "#define MY_MODEL_NUM_CLASSES 4", "#define MY_MODEL_NUM_FEATURES 11",
                "#define MY_MODEL_HAS_HEAD 1", "#define MY_MODEL_WORKSPACE_BYTES "):
        assert sym in h
    bits, _ = fixed_circuits()["bits"]
    src = c_source.emit(bits, "m")
    assert "int m_bits(const uint8_t *x, size_t n, uint8_t *bits, void *workspace);" in src.h
    assert "m_scores" not in src.h and "#define M_HAS_HEAD 0" in src.h
    assert src.h.split("int m_bits(")[1].split(";")[0] in src.c   # the .c repeats the header's prototypes


@pytest.mark.parametrize("prefix", ["", "1net", "net-x", "int", None, "a b", "lgc", "run", "head"])
def test_bad_prefix_is_a_value_error(prefix):
    with pytest.raises(ValueError):
        c_source.emit(fixed_circuits()["bits"][0], prefix)


def test_difflogic_entry_point_needs_a_head():
    with pytest.raises(ValueError):
        c_source.emit(fixed_circuits()["bits"][0], "net", difflogic_num_bits=64)
    with pytest.raises(ValueError):
        c_source.emit(fixed_circuits()["head"][0], "net", difflogic_num_bits=12)


def test_empty_raw_feature_batch_is_an_empty_result():
    """Regression: an empty batch of raw features crashed input_bits (numpy cannot reshape 0 rows to -1)."""
    circuit, _ = fixed_circuits()["head_encoder"]
    out = simulate(circuit, np.zeros((0, 11), np.float32))
    assert out.shape == (0, 4) and out.dtype == np.int32
    assert lgc.compile(circuit, target="numpy")(np.zeros((0, 11))).shape == (0, 4)


def test_readme_c_program_builds_and_prints_the_oracles_scores(tmp_path):
    """The README's Deployment main.c, verbatim, linked with an emitted 784-input, 10-class net.c."""
    need("c-compiler", None if shutil.which("gcc") else "no gcc on PATH")
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    main_c = "/* main.c:" + readme.split("/* main.c:", 1)[1].split("```", 1)[0]
    circuit = lgc.optimize(random_layered_circuit(784, [300, 200], num_classes=10, seed=5), level=2)
    lgc.export(circuit, tmp_path / "net.c")
    (tmp_path / "main.c").write_text(main_c)
    subprocess.run(["gcc", *c_source.STRICT_FLAGS, "-O2", "main.c", "net.c", "-o", "classify"], cwd=tmp_path, check=True)
    printed = subprocess.run(["./classify"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    x = np.zeros((2, 784), bool)
    x[1, 0] = True
    expect = simulate(circuit, x)
    assert printed.splitlines() == [f"class {c}: {expect[0, c]} {expect[1, c]}" for c in range(10)]


def test_straight_line_by_size():
    """The default emits straight-line gates up to STRAIGHT_LINE_MAX_GATES scheduled gates, tables above."""
    small = random_layered_circuit(16, [40, 20], num_classes=2, seed=8)
    big = random_layered_circuit(64, [c_source.STRAIGHT_LINE_MAX_GATES, 600], seed=9)
    assert "#define LGC_GATES_AS_CODE" in c_source.emit(small).c
    assert "#define LGC_GATES_AS_CODE" not in c_source.emit(big).c
    assert "#define LGC_GATES_AS_CODE" not in c_source.emit(small, straight_line=False).c
