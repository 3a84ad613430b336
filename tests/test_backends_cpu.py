"""The native CPU targets (c, cpu-avx2, cpu-avx512, llvm) against the reference simulator, bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import need_target
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import batches, circuits

import lgc
from lgc._build import BuildError
from lgc.backends import cpu_c, resolve_target
from lgc.ir import GroupSumHead, InputEncoder, pack_bits, random_layered_circuit, simulate

NATIVE = ("c", "cpu-avx2", "cpu-avx512", "llvm")


def build(circuit, target, threads=2):
    return lgc.backends.build(circuit, target, threads=threads)


@pytest.mark.parametrize("target", NATIVE)
@settings(max_examples=25)
@given(data=st.data())
def test_matches_oracle_on_random_circuits(target, data):
    need_target(target)
    circuit = data.draw(circuits(max_inputs=12, max_gates=120, encoders=True))
    x = data.draw(batches(circuit.num_inputs, max_n=300))
    assert np.array_equal(build(circuit, target)(x), simulate(circuit, x))


@pytest.mark.parametrize("target", NATIVE)
@settings(max_examples=10)
@given(data=st.data())
def test_matches_oracle_with_wide_inputs(target, data):
    """Inputs wider than a vector block exercise the vector packing path and its column tail."""
    need_target(target)
    circuit = data.draw(circuits(min_inputs=60, max_inputs=200, max_gates=300, max_outputs=40))
    x = data.draw(batches(circuit.num_inputs, max_n=1100))
    assert np.array_equal(build(circuit, target)(x), simulate(circuit, x))


@pytest.mark.parametrize("target", NATIVE)
@pytest.mark.parametrize("head", [True, False])
def test_batch_sizes_and_threads(target, head):
    need_target(target)
    c = random_layered_circuit(150, [300, 200, 120], num_classes=6 if head else None, seed=3)
    rng = np.random.default_rng(0)
    for threads in (1, 2, 3):
        net = build(c, target, threads=threads)
        for n in (0, 1, 63, 64, 65, 511, 512, 513, 1000, 2049):
            x = rng.random((n, 150)) < 0.5
            want = simulate(c, x)
            got = net(x)
            assert got.dtype == want.dtype and got.shape == want.shape, (threads, n)
            assert np.array_equal(got, want), (threads, n)
            if n == 1000:
                assert np.array_equal(net(pack_bits(x)), want)  # packed input
                assert np.array_equal(net(x.astype(np.uint8)), want)  # 0/1 numbers
                assert np.array_equal(net(np.asfortranarray(x)), want)  # not C-contiguous
                assert np.array_equal(net(x[::-1]), simulate(c, x[::-1]))  # negative strides


@pytest.mark.parametrize("target", NATIVE)
def test_raw_features_and_predict(target):
    need_target(target)
    rng = np.random.default_rng(1)
    base = random_layered_circuit(40, [80, 60], num_classes=3, seed=5)
    c = base.replace(input_encoder=InputEncoder(rng.integers(0, 10, size=40), rng.normal(size=40), 10))
    feats = rng.normal(size=(300, 10)).astype(np.float32)
    net = build(c, target)
    assert np.array_equal(net(feats), simulate(c, feats))
    assert np.array_equal(net.predict(feats), np.argmax(simulate(c, feats), axis=1))
    assert net.target == target and net.circuit is not None


@pytest.mark.parametrize("target", NATIVE)
def test_bad_inputs_are_value_errors(target):
    need_target(target)
    c = random_layered_circuit(8, [16], num_classes=2, seed=0)
    net = build(c, target)
    for bad in (np.zeros((4, 9), bool), np.zeros(8, bool), np.full((3, 8), 2), np.full((2, 8), np.nan),
                np.array([["a"] * 8]), np.zeros((2, 8), dtype=object)):
        with pytest.raises(ValueError):
            net(bad)


def test_unknown_and_unavailable_targets_list_available(monkeypatch):
    with pytest.raises(ValueError, match="cpu-avx512|numpy"):
        resolve_target("cpu-avx1024")
    monkeypatch.setenv("LGC_CC", "/nonexistent/gcc-lgc")
    with pytest.raises(ValueError, match="available: .*numpy"):
        resolve_target("c")


def test_missing_compiler_is_a_build_error(monkeypatch):
    monkeypatch.setenv("LGC_CC", "/nonexistent/gcc-lgc")
    assert "C compiler" in cpu_c.available("c")
    with pytest.raises(BuildError, match="C compiler"):
        cpu_c.library("c")


def test_cpu_resolves_to_fastest_available():
    target, _ = resolve_target("cpu")
    assert target in lgc.backends.CPU_PREFERENCE
    assert target == next(t for t in lgc.backends.CPU_PREFERENCE if t in lgc.targets())


@pytest.mark.parametrize("target", NATIVE)
def test_save_and_load(target, tmp_path):
    need_target(target)
    c = random_layered_circuit(30, [64, 40], num_classes=4, seed=2)
    net = build(c, target)
    path = tmp_path / "net.lgc"
    net.save(path)
    again = lgc.load(path)
    assert again.target == target
    x = np.random.default_rng(0).random((200, 30)) < 0.5
    assert np.array_equal(again(x), net(x))


@pytest.mark.parametrize("target", NATIVE)
def test_large_groups_and_constant_outputs(target):
    """A head with big groups (the carry-save counter's higher planes) and outputs that are
    inputs or constants."""
    need_target(target)
    n = 70
    g = 600
    rng = np.random.default_rng(4)
    op = rng.integers(0, 16, size=g)
    a = (rng.random(g) * (n + np.arange(g))).astype(np.int64)
    b = (rng.random(g) * (n + np.arange(g))).astype(np.int64)
    outputs = rng.integers(0, n + g, size=2 * 300)
    outputs[:5] = [0, 1, 2, 3, 4]
    c = lgc.ir.Circuit(n, op, a, b, outputs, head=GroupSumHead(2, 1.0)).validate()
    x = rng.random((700, n)) < 0.5
    assert np.array_equal(build(c, target)(x), simulate(c, x))


@pytest.mark.parametrize("target", ("c", "cpu-avx2", "cpu-avx512"))
def test_weighted_readout_of_copies_negations_constants_and_duplicates(target):
    """The kernels count a head as signed weighted popcounts: outputs that are NOT/copy chains,
    constants, repeated many times (weights with several binary digits) or all constant."""
    need_target(target)
    from lgc.ir import ops
    n = 20
    rng = np.random.default_rng(7)
    op = list(rng.integers(0, 16, size=40))
    a = [int(rng.integers(0, n + i)) for i in range(40)]
    b = [int(rng.integers(0, n + i)) for i in range(40)]
    for code in (ops.NOT_A, ops.NOT_B, ops.A, ops.B, ops.NOT_A, ops.FALSE, ops.TRUE):  # chains of copies/NOTs
        op.append(int(code))
        a.append(len(a) + n - 1)
        b.append(len(b) + n - 2)
    last = n + len(op) - 1
    outputs = list(range(n + 40, n + len(op))) * 13 + [0, last, last - 2] + [n + 3] * 9  # class 0
    outputs = outputs[:100] + [n + 40 + 4] * 100 + [n + len(op) - 2] * 100  # class 1: one NOT, class 2: TRUE
    c = lgc.ir.Circuit(n, op, a, b, outputs, head=GroupSumHead(3, 1.0)).validate()
    x = rng.random((530, n)) < 0.5
    assert np.array_equal(build(c, target, threads=1)(x), simulate(c, x))
    const = c.replace(outputs=[n + len(op) - 1, n + len(op) - 2] * 3, head=GroupSumHead(2, 1.0))
    assert np.array_equal(build(const, target, threads=1)(x), simulate(const, x))


def test_readout_schedule_drops_output_only_negations():
    from lgc.backends._schedule import readout_schedule, schedule
    c = random_layered_circuit(30, [60, 40], num_classes=4, seed=9)
    n = c.num_inputs
    extra = c.replace(op=np.concatenate([np.ones_like(c.op), [12] * 40]),  # ANDs, then 40 NOT outputs
                      a=np.concatenate([c.a, c.outputs[:40]]),
                      b=np.concatenate([c.b, c.outputs[:40]]),
                      outputs=np.concatenate([n + c.num_gates + np.arange(40), c.outputs[40:]]), layers=None)
    full, (reduced, readout) = schedule(extra), readout_schedule(extra)
    assert len(reduced.gates) <= len(full.gates) - 40
    assert readout.consts.sum() == 40  # each ~y counts as 1 - y
    assert (readout.terms[:, 2] == -1).any()
    x = np.random.default_rng(0).random((100, n)) < 0.5
    if cpu_c.available("c") is None:
        assert np.array_equal(build(extra, "c")(x), simulate(extra, x))


@pytest.mark.parametrize("target", ("c", "cpu-avx2", "cpu-avx512"))
def test_wide_rows_block_multiples_and_tails(target):
    """Row widths at and around the 64-input mask blocks (cpu-avx512's GFNI packing) and 784."""
    need_target(target)
    rng = np.random.default_rng(11)
    for n_in in (63, 64, 65, 128, 784):
        c = random_layered_circuit(n_in, [200, 50], num_classes=5, seed=n_in)
        for n in (1, 511, 1100):
            x = rng.random((n, n_in)) < 0.5
            assert np.array_equal(build(c, target, threads=1)(x), simulate(c, x)), (n_in, n)


def test_avx512_without_gfni_extras_still_matches(monkeypatch):
    """cpu-avx512 on a host without GFNI/VBMI builds the shift-or packing path: check it too."""
    need_target("cpu-avx512")
    monkeypatch.setattr(cpu_c, "_EXTRAS", {})
    assert "-mgfni" not in cpu_c.build_flags("cpu-avx512")
    ffi, lib = cpu_c._load.__wrapped__("cpu-avx512", cpu_c.compiler())
    monkeypatch.setattr(cpu_c, "library", lambda target: (ffi, lib))
    rng = np.random.default_rng(12)
    for n_in in (60, 784):
        c = random_layered_circuit(n_in, [150, 40], num_classes=4, seed=n_in)
        x = rng.random((1100, n_in)) < 0.5
        assert np.array_equal(build(c, "cpu-avx512", threads=2)(x), simulate(c, x))


def test_avx512_fuses_single_reader_pairs_into_3_input_gates():
    need_target("cpu-avx512")
    c = random_layered_circuit(100, [300, 200, 100], num_classes=5, seed=21)
    net = build(c, "cpu-avx512", threads=1)
    assert len(net.schedule.tgates) > 0 and len(net.schedule.gates) + len(net.schedule.tgates) < c.num_gates
    x = np.random.default_rng(2).random((777, 100)) < 0.5
    assert np.array_equal(net(x), simulate(c, x))


@pytest.mark.parametrize("target", ("c", "cpu-avx2", "cpu-avx512"))
def test_gates_only_the_head_reads_are_computed_inside_the_count(target):
    """Last-layer gates read once by the head take no slot: the kernel computes them (2-input,
    and 3-input on cpu-avx512) inside the popcount, with duplicate/negated outputs still in slots."""
    need_target(target)
    from lgc.backends._schedule import readout_schedule
    c = random_layered_circuit(64, [300, 200, 120], num_classes=6, seed=23)
    n = c.num_inputs
    dup = c.replace(outputs=np.concatenate([c.outputs[:-6], c.outputs[:6]]))  # a few outputs counted twice
    for circuit in (c, dup):
        net = build(circuit, target, threads=1)
        plain, _ = readout_schedule(circuit, fuse=len(net.schedule.tgates) > 0)
        r = net.readout
        assert len(r.term_gates) > 0 and (net.schedule.out_slots == -1).sum() == len(r.term_gates)
        assert len(net.schedule.gates) + len(net.schedule.tgates) + len(r.term_gates) \
            == len(plain.gates) + len(plain.tgates)
        assert (r.term_groups[:, 0] >= 16).any() == (target == "cpu-avx512")
        x = np.random.default_rng(3).random((1000, n)) < 0.5
        assert np.array_equal(net(x), simulate(circuit, x))
