"""The cuda target: the runtime compiles wherever nvcc exists, its host tables are emulated in numpy
against the oracle, it reports itself unavailable with a reason on CPU-only hosts, and (where a
GPU is present) it matches lgc.ir.simulate bit for bit."""
from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest
from conftest import REPO, need
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import batches, circuits

import lgc
from lgc.backends import cuda
from lgc.backends._cuda_tables import emulate, tables
from lgc.ir import Circuit, GroupSumHead, pack_bits, packed_input, random_layered_circuit, simulate


def gpu() -> None:
    need("gpu", cuda.available())


# ---------------------------------------------------------------- everywhere nvcc exists

def test_runtime_compiles_with_nvcc(tmp_path):
    nvcc = cuda.nvcc_path()
    need("nvcc", None if nvcc else "nvcc not found")
    proc = subprocess.run([nvcc, "-c", "-arch=sm_80", "-std=c++17", str(REPO / "cuda" / "runtime.cu"),
                           "-o", str(tmp_path / "runtime.o")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "runtime.o").stat().st_size > 0


# ---------------------------------------------------------------- CPU side

def test_unavailable_target_is_reported_and_refused():
    why = cuda.available("cuda")
    if why is None:
        assert "cuda" in lgc.targets()
        return
    assert why.startswith(("no nvcc", "no CUDA device")), why
    assert "cuda" not in lgc.targets()
    with pytest.raises(ValueError, match="'cuda' is not available here: " + why.split(" (")[0]):
        lgc.compile(lgc.ir.example_circuit(), target="cuda")


def test_missing_nvcc_is_the_reason(monkeypatch):
    monkeypatch.setenv("LGC_NVCC", "/nonexistent/nvcc")
    assert cuda.available("cuda").startswith("no nvcc")
    assert cuda.available("not-a-target") == "unknown target 'not-a-target'"


def test_every_op_in_the_tables():
    """One gate per op code over all four input pairs: the tables' truth-table codes are right."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=bool)
    ops = np.arange(16, dtype=np.uint8)
    c = Circuit(num_inputs=2, op=ops, a=np.zeros(16, np.int32), b=np.ones(16, np.int32),
                outputs=np.arange(2, 18, dtype=np.int32))
    words = pack_bits(x).words
    for cw in (1, 2):
        assert np.array_equal(emulate(tables(c), words, 4, cw), simulate(c, x))


@settings(max_examples=30)
@given(data=st.data())
def test_tables_emulated_match_oracle(data):
    """The kernels' algorithm (slots, per-level rows, vertical-counter readout, chunks) in numpy."""
    circuit = data.draw(circuits(max_inputs=10, max_gates=80, encoders=True))
    x = data.draw(batches(circuit.num_inputs, max_n=300))
    chunk_words = data.draw(st.integers(1, 3))
    packed = packed_input(circuit, x)
    got = emulate(tables(circuit), packed.words, packed.n, chunk_words)
    assert np.array_equal(got, simulate(circuit, x))


def test_tables_large_groups_and_slot_reuse():
    c = random_layered_circuit(40, [600, 400, 300], num_classes=3, tau=1.0, seed=3)
    t = tables(c)
    assert t.num_levels == 3 and t.rows.shape == (c.num_gates, 4)
    assert t.num_slots < c.num_nodes  # liveness recycles the first layer's slots
    x = np.random.default_rng(0).random((200, 40)) < 0.5
    assert np.array_equal(emulate(t, pack_bits(x).words, 200, 2), simulate(c, x))


def test_tables_refuse_groups_beyond_the_counters():
    c = Circuit(num_inputs=1, op=[], a=[], b=[], outputs=np.zeros(1 << 24, np.int32), head=GroupSumHead(1, 1.0))
    with pytest.raises(ValueError, match="exceeds the CUDA readout"):
        tables(c)


# ---------------------------------------------------------------- GPU

@pytest.fixture(scope="module")
def layered():
    return random_layered_circuit(64, [500, 500, 300], num_classes=10, tau=1.0, seed=1)


@settings(max_examples=25)
@given(data=st.data())
def test_gpu_matches_oracle(data):
    gpu()
    circuit = data.draw(circuits(max_inputs=12, max_gates=120, encoders=True))
    x = data.draw(batches(circuit.num_inputs, max_n=300))
    net = lgc.backends.build(circuit, "cuda", memory_bytes=data.draw(st.sampled_from([1, 1 << 20])))
    expected = simulate(circuit, x)
    assert np.array_equal(net(x), expected)
    assert np.array_equal(net(packed_input(circuit, x)), expected)


def test_gpu_chunks_and_packed_inputs(layered):
    gpu()
    rng = np.random.default_rng(5)
    x = rng.random((5000, 64)) < 0.5
    expected = simulate(layered, x)
    for memory in (1, 8 * 1500 * 3, None):  # one word per chunk, a few words, one chunk
        net = lgc.backends.build(layered, "cuda", memory_bytes=memory)
        assert np.array_equal(net(x), expected)
        assert np.array_equal(net(pack_bits(x)), expected)
        assert np.array_equal(net.predict(x), np.argmax(expected, axis=1))


def test_gpu_torch_tensors_stay_on_device(layered):
    gpu()
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    rng = np.random.default_rng(6)
    x = rng.random((3000, 64)) < 0.5
    net = lgc.backends.build(layered, "cuda")
    for t in (torch.from_numpy(x).cuda(), torch.from_numpy(x.astype(np.uint8)).cuda()):
        out = net(t)
        assert out.is_cuda and out.dtype == torch.int32
        assert np.array_equal(out.cpu().numpy(), simulate(layered, x))
    with pytest.raises(ValueError, match="0 or 1"):
        net(torch.full((4, 64), 2, dtype=torch.uint8, device="cuda"))
    with pytest.raises(ValueError, match="does not fit"):
        net(torch.zeros((4, 63), dtype=torch.bool, device="cuda"))


def test_gpu_raw_bits_and_errors():
    gpu()
    c = random_layered_circuit(20, [100, 50], seed=2)  # no head: raw bits
    x = np.random.default_rng(1).random((777, 20)) < 0.5
    net = lgc.backends.build(c, "cuda")
    assert np.array_equal(net(x), simulate(c, x))
    with pytest.raises(ValueError):
        net(np.zeros((3, 19), dtype=bool))
    assert net(np.zeros((0, 20), dtype=bool)).shape == (0, 50)


def test_gpu_packbits_tensor_runs_models():
    gpu()
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    from lgc.compat.difflogic import PackBitsTensor, run_packed
    c = random_layered_circuit(30, [200, 100], num_classes=5, tau=1.0, seed=4)
    x = np.random.default_rng(2).random((1000, 30)) < 0.5
    out = run_packed(c, PackBitsTensor(torch.from_numpy(x).cuda()))
    assert out.is_cuda and np.array_equal(out.cpu().numpy(), simulate(c, x))


# ---------------------------------------------------------------- the binding against a numpy stand-in

def _addr(p) -> int:
    return (p.value or 0) if isinstance(p, ctypes.c_void_p) else int(p or 0)


def _view(p, dtype, count: int) -> np.ndarray:
    nbytes = int(count) * np.dtype(dtype).itemsize
    return np.frombuffer((ctypes.c_uint8 * nbytes).from_address(_addr(p)), dtype=dtype, count=int(count)) \
        if nbytes else np.zeros(0, dtype)


class FakeRuntime:
    """The C API of cuda/runtime.cu over host memory, computing with the numpy emulation of the
    kernels: it checks the binding's pointers, strides, kinds and chunk sizes, not the GPU."""

    def __init__(self, corrupt: bool = False):
        self.nets, self.buffers, self.corrupt, self.calls = {}, {}, corrupt, []

    def lgc_cu_error_string(self, rc):
        return b"fake error"

    def lgc_cu_net_create(self, n_in, n_slots, n_rows, rows, n_levels, bounds, n_out, out_slots, k, handle):
        from lgc.backends._cuda_tables import CudaTables
        t = CudaTables(n_in, n_slots, _view(rows, np.int32, 4 * n_rows).reshape(n_rows, 4).copy(),
                       _view(bounds, np.int64, n_levels + 1).copy(), _view(out_slots, np.int32, n_out).copy(), k)
        handle._obj.value = len(self.nets) + 1
        self.nets[handle._obj.value] = t
        return 0

    def lgc_cu_net_device(self, handle):
        return 0

    def lgc_cu_net_free(self, handle):
        return 0

    def lgc_cu_run(self, handle, x, x_kind, wstride, n, out, on_device, chunk_words, stream):
        t = self.nets[_addr(handle)]
        self.calls.append((x_kind, on_device, chunk_words))
        if x_kind in (0, 1):
            words = pack_bits(_view(x, np.uint8, n * t.num_inputs).reshape(n, t.num_inputs) != 0).words
        else:
            words = _view(x, np.uint64, t.num_inputs * wstride).reshape(t.num_inputs, wstride)[:, :(n + 63) // 64]
        res = emulate(t, words, n, chunk_words)
        if self.corrupt and res.size:
            res[-1, -1] += 1
        _view(out, res.dtype, res.size)[:] = res.reshape(-1)
        return 0

    def lgc_cu_time_runs(self, handle, x, x_kind, wstride, n, out, chunk_words, reps, ms):
        for r in range(reps):
            self.lgc_cu_run(handle, x, x_kind, wstride, n, out, 1, chunk_words, None)
            ms[r] = 1.0
        return 0

    def lgc_cu_malloc(self, ptr, nbytes):
        buf = np.zeros(nbytes, np.uint8)
        ptr._obj.value = buf.ctypes.data
        self.buffers[buf.ctypes.data] = buf
        return 0

    def lgc_cu_memcpy(self, dst, src, nbytes):
        ctypes.memmove(_addr(dst), _addr(src), nbytes)
        return 0

    def lgc_cu_free(self, ptr):
        self.buffers.pop(_addr(ptr), None)
        return 0

    def lgc_cu_synchronize(self):
        return 0


@pytest.fixture
def fake(monkeypatch):
    rt = FakeRuntime()
    monkeypatch.setattr(cuda, "library", lambda: rt)
    monkeypatch.setattr(cuda, "available", lambda target="cuda": None)
    return rt


@settings(max_examples=20)
@given(data=st.data())
def test_binding_inputs_and_outputs(data):
    rt = FakeRuntime()
    circuit = data.draw(circuits(max_inputs=10, max_gates=60, encoders=True))
    x = data.draw(batches(circuit.num_inputs, max_n=200))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cuda, "library", lambda: rt)
        mp.setattr(cuda, "available", lambda target="cuda": None)
        net = lgc.backends.build(circuit, "cuda", memory_bytes=data.draw(st.sampled_from([1, 1 << 20])))
        expected = simulate(circuit, x)
        assert np.array_equal(net(x), expected)
        assert np.array_equal(net(packed_input(circuit, x)), expected)


def test_binding_strided_packed_words_and_chunk_size(fake):
    c = random_layered_circuit(12, [40, 20], num_classes=4, tau=1.0, seed=9)
    x = np.random.default_rng(3).random((300, 12)) < 0.5
    wide = np.zeros((12, 10), np.uint64)
    wide[:, :5] = pack_bits(x).words
    net = lgc.backends.build(c, "cuda", memory_bytes=8 * 100 * 2)
    assert net.chunk_words == max(1, 8 * 100 * 2 // net.tables.bytes_per_chunk_word())
    assert np.array_equal(net(lgc.ir.PackedBits(wide[:, :5], 300)), simulate(c, x))
    assert fake.calls[-1] == (2, 0, net.chunk_words)
    assert np.array_equal(net.predict(x), np.argmax(simulate(c, x), axis=1))
    with pytest.raises(ValueError, match="memory_bytes"):
        lgc.backends.build(c, "cuda", memory_bytes=0)


def _gpu_benchmark():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "benchmarks" / "gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.CHECK, mod.SETS = 64, 2
    return mod


@pytest.mark.parametrize("corrupt", [False, True])
def test_benchmark_plumbing_and_its_check(monkeypatch, corrupt):
    """benchmarks/gpu.py's timing loop on the stand-in: offsets and windows line up, and a wrong
    score is caught."""
    rt = FakeRuntime(corrupt=corrupt)
    monkeypatch.setattr(cuda, "library", lambda: rt)
    bench = _gpu_benchmark()
    c = random_layered_circuit(30, [100, 50], num_classes=10, tau=1.0, seed=2)
    run = bench.Run(dry_run=False)
    run.batch_exps = range(7, 10)
    rows = bench._bench_net(run, "t", c)
    assert [r["batch"] for r in rows] == [128, 256, 512]
    assert all(r["runs"] == 10 and r["checked_samples"] > 0 for r in rows)
    assert bool(run.failures) == corrupt
    assert rt.calls[0] == (3, 1, rows[0]["chunk_words"])  # the untimed run that sizes the workspace
