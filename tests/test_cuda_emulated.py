"""lgc's CUDA sources run in every CI run, on the CPU emulation of the CUDA execution model in
tools/cuda_emu (each thread a fiber, warps that meet at every shuffle, launch limits, block and
thread orders, garbage-filled device memory; see its cuda_runtime.h).

The unchanged .cu files are compiled for the host and driven through lgc's real bindings: the
training kernels through the autograd glue (against the python implementation and the CPU
kernels), the packed-bits runtime through ``CudaNet`` (against lgc.ir.simulate). Every test also
asserts the emulator saw no violation (a divergent barrier, a shuffle naming an exited lane, an
illegal launch shape, a deadlock). Planted faults (one truth-table bit, an off-by-one in the
readout) must be caught."""
from __future__ import annotations

import ctypes
import functools
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, need
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import batches, circuits

from lgc.backends.cuda import CudaNet
from lgc.frontend import kernels
from lgc.frontend.conv import LogicConv2d
from lgc.frontend.conv_kernels import _ConvLib, cpu_kernel_unavailable
from lgc.ir import PackedBits, pack_bits, packed_input, random_layered_circuit, simulate

sys.path.insert(0, str(REPO / "tools"))
import cuda_emu  # noqa: E402

ORDERS = ("forward", "reverse", "shuffled")


def emulator(name: str, source: str | None = None) -> cuda_emu.Emulator:
    need("cuda-emu", None if cuda_emu.compiler() else "no C++ compiler for the CUDA emulator")
    return cuda_emu.load(name, source)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- the emulator itself

_PROBE = r"""
#include <cuda_runtime.h>
#include <stdint.h>
__global__ void shuffle_after_exit(int* out) {
    if (threadIdx.x % 2) return;               // half the lanes exit ...
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, (int)threadIdx.x, 1);  // ... then a full-mask shuffle
}
__global__ void divergent_barrier(int* out) {
    if (threadIdx.x < 16) return;
    __syncthreads();
    out[threadIdx.x] = 1;
}
__global__ void last_writer(int* out) { out[0] = blockIdx.x * blockDim.x + threadIdx.x; }
__global__ void warp_sum(int* out) {
    int v = threadIdx.x;
    for (int s = 16; s > 0; s /= 2) v += __shfl_xor_sync(0xffffffffu, v, s);
    out[threadIdx.x] = v + __all_sync(0xffffffffu, threadIdx.x < 64) * 1000;
}
extern "C" int probe(int which, int* out, int threads) {
    switch (which) {
        case 0: shuffle_after_exit<<<1, 32>>>(out); break;
        case 1: divergent_barrier<<<1, 64>>>(out); break;
        case 2: last_writer<<<4, threads>>>(out); break;
        case 3: warp_sum<<<1, threads>>>(out); break;
        case 4: last_writer<<<dim3(1, 70000), 32>>>(out); break;
    }
    return (int)cudaGetLastError();
}
"""


@pytest.fixture(scope="module")
def probe():
    emu = emulator("probe.cu", _PROBE)
    emu.lib.probe.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    return emu


def test_emulator_flags_what_a_gpu_would_not_forgive(probe):
    out = np.zeros(2048, np.int32)
    probe.configure()
    probe.lib.probe(0, out.ctypes.data, 32)
    assert "has exited" in probe.violations()
    probe.configure()
    probe.lib.probe(1, out.ctypes.data, 64)
    assert "divergent barrier" in probe.violations()
    probe.configure()
    assert probe.lib.probe(2, out.ctypes.data, 2000) == 9  # cudaErrorInvalidConfiguration
    assert "illegal launch: block of 2000 threads" in probe.violations()
    probe.configure()
    assert probe.lib.probe(4, out.ctypes.data, 32) == 9
    assert "grid (1, 70000, 1)" in probe.violations()
    probe.configure()
    probe.lib.probe(3, out.ctypes.data, 48)  # a partial second warp under a full mask
    assert "partial warp" in probe.violations()


def test_emulator_warp_primitives_and_orders(probe):
    out = np.zeros(64, np.int32)
    probe.configure(order="shuffled", seed=5)
    probe.lib.probe(3, out.ctypes.data, 64)
    probe.check()
    assert np.array_equal(out[:32], np.full(32, sum(range(32)) + 1000))
    assert np.array_equal(out[32:], np.full(32, sum(range(32, 64)) + 1000))
    last = {}
    for order in ORDERS:  # an unsynchronised write: the orders must expose it
        probe.configure(order=order, seed=2)
        probe.lib.probe(2, out.ctypes.data, 128)
        probe.check()
        last[order] = int(out[0])
    assert last["forward"] == 511 and last["reverse"] == 0


# ---------------------------------------------------------------- training kernels: fully connected

@pytest.fixture(scope="module")
def layer_emu():
    return emulator("logic_layer.cu")


def _impl(emu: cuda_emu.Emulator) -> kernels.Implementation:
    backend = kernels._CudaBackend(emu.lib, device_type="cpu")
    return kernels.Implementation("cuda-emulated", kernels.gate_coefficients,
                                  functools.partial(kernels.kernel_logic, backend))


def _forward_backward(impl, x, w, a, b, grad_factor, seed=0):
    x = x.detach().clone().requires_grad_(True)
    w = w.detach().clone().requires_grad_(True)
    y = impl.logic(x, impl.coefficients(w, False), a, b, grad_factor)
    g = torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(seed))
    (y * g).sum().backward()
    return y.detach(), x.grad, w.grad


FC_CASES = [  # batch, in_dim, out_dim, grid cap (0: none), order
    (0, 5, 7, 0, "forward"), (1, 5, 7, 0, "reverse"), (33, 40, 50, 2, "shuffled"),
    (70, 9, 301, 1, "forward"), (257, 17, 40, 3, "reverse"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch,in_dim,out_dim,cap,order", FC_CASES)
def test_fc_kernels_match_python(layer_emu, dtype, batch, in_dim, out_dim, cap, order):
    gen = torch.Generator().manual_seed(batch + out_dim)
    x = torch.rand(batch, in_dim, dtype=dtype, generator=gen)
    w = torch.randn(out_dim, 16, dtype=dtype, generator=gen)
    a = torch.randint(0, in_dim, (out_dim,), generator=gen)
    b = torch.randint(0, in_dim, (out_dim,), generator=gen)
    same = torch.rand(out_dim, generator=gen) < 0.3  # gates whose operands are one node
    b[same] = a[same]
    layer_emu.configure(order=order, seed=out_dim, cap=(cap, 0, 0), garbage=-1)
    got = _forward_backward(_impl(layer_emu), x, w, a, b, 0.5)
    layer_emu.check()
    want = _forward_backward(kernels.PYTHON, x, w, a, b, 0.5)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for g, e in zip(got, want):
        torch.testing.assert_close(g, e, rtol=tol, atol=tol)


def test_fc_kernels_gradcheck_and_asymmetric_same_operand_ops(layer_emu):
    """df/da + df/db for a gate reading one node twice, for every op (asymmetric ones included)."""
    layer_emu.configure(order="shuffled", seed=9)
    impl = _impl(layer_emu)
    x = torch.rand(3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(16, 16, dtype=torch.float64, requires_grad=True)
    a = torch.tensor([i % 4 for i in range(16)])
    b = a.clone()
    assert torch.autograd.gradcheck(lambda x, w: impl.logic(x, impl.coefficients(w, False), a, b), (x, w))
    layer_emu.check()


def test_fc_cpu_and_emulated_cuda_kernels_agree(layer_emu):
    need("cpu-kernel", kernels.cpu_kernel_unavailable())
    gen = torch.Generator().manual_seed(1)
    x, w = torch.rand(65, 30, generator=gen), torch.randn(90, 16, generator=gen)
    a, b = torch.randint(0, 30, (90,), generator=gen), torch.randint(0, 30, (90,), generator=gen)
    layer_emu.configure(order="reverse")
    got = _forward_backward(_impl(layer_emu), x, w, a, b, 1.0)
    layer_emu.check()
    want = _forward_backward(kernels.resolve("cpu", x), x, w, a, b, 1.0)
    for g, e in zip(got, want):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


def test_bindings_refuse_operands_on_another_device_or_dtype(layer_emu):
    backend = kernels._CudaBackend(layer_emu.lib, device_type="cpu")
    xt, c = torch.rand(4, 8), torch.rand(3, 4)
    a, b = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3])
    with pytest.raises(ValueError, match="int64"):
        backend.forward(xt, a.int(), b, c)
    with pytest.raises(ValueError, match="dtype"):
        backend.forward(xt, a, b, c.double())
    with pytest.raises(ValueError, match="contiguous"):
        backend.forward(torch.rand(8, 4).t(), a, b, c)
    with pytest.raises(ValueError, match="runs on cuda tensors"):
        kernels._CudaBackend(layer_emu.lib).forward(xt, a, b, c)  # the nvcc build: host memory refused
    layer_emu.check()


# ---------------------------------------------------------------- training kernels: convolution

CONV_CASES = [  # in_ch, out_ch, kernel, depth, stride, padding, H, W, batch, cap, order
    (1, 4, 3, 3, 1, 0, 7, 6, 3, 0, "forward"),
    (3, 5, 3, 3, 1, 1, 8, 9, 2, 2, "shuffled"),
    (2, 6, (2, 3), 2, (2, 1), (0, 1), 9, 8, 1, 0, "reverse"),
    (4, 3, 3, 4, 2, 2, 6, 7, 2, 1, "forward"),
    (2, 2, 1, 1, 3, 0, 5, 5, 0, 0, "shuffled"),
]


@pytest.fixture(scope="module")
def conv_emu():
    return emulator("logic_conv.cu")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_kernels_match_python_and_cpu(conv_emu, dtype, case):
    c, o, k, d, s, p, h, w, batch, cap, order = case
    torch.manual_seed(d + o)
    layer = LogicConv2d(c, o, k, depth=d, stride=s, padding=p, channels_per_tree=2, implementation="cpu").to(dtype)
    x = torch.rand(batch, c, h, w, dtype=dtype)
    grad = torch.randn((batch, o, *layer.output_size((h, w))), dtype=dtype)

    def run(kernel):
        xi = x.clone().requires_grad_(True)
        layer._kernel = kernel  # instance attribute: this layer's fused kernel
        y = layer(xi)
        gx, gw = torch.autograd.grad(y, (xi, layer.weights), grad, allow_unused=True)
        del layer._kernel
        return y.detach(), gx, gw

    conv_emu.configure(order=order, seed=batch, cap=(cap, 0, 0), garbage=-1)
    emulated = _ConvLib(conv_emu.lib, cuda=True, device_type="cpu")
    got = run(lambda _x: emulated)
    conv_emu.check()
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    references = [run(lambda _x: None)]  # the PyTorch path
    if cpu_kernel_unavailable() is None:
        from lgc.frontend.conv_kernels import cpu_library
        references.append(run(lambda _x: cpu_library()))
    for want in references:
        for g, e in zip(got, want):
            if e is None:
                assert g is None or not g.abs().sum()
            else:
                torch.testing.assert_close(g, e, rtol=tol, atol=tol)


# ---------------------------------------------------------------- packed-bits runtime through CudaNet

@pytest.fixture(scope="module")
def runtime_emu():
    return emulator("runtime.cu")


def _inputs(circuit, x: np.ndarray, kind: str):
    if kind == "packed":
        return packed_input(circuit, x)
    if kind == "bytes255":  # bool rows whose True bytes are 0xFF
        bits = packed_input(circuit, x)
        rows = np.zeros((bits.n, circuit.num_inputs), np.uint8)
        for i in range(circuit.num_inputs):
            rows[:, i] = np.unpackbits(bits.words[i].view(np.uint8), bitorder="little")[:bits.n]
        return (rows * 255).view(bool)
    return x


@settings(max_examples=40)
@given(data=st.data())
def test_runtime_matches_oracle(runtime_emu, data):
    circuit = data.draw(circuits(max_inputs=12, max_gates=120, encoders=True))
    x = data.draw(batches(circuit.num_inputs, max_n=200))
    kind = data.draw(st.sampled_from(["as drawn", "packed", "bytes255"]))
    runtime_emu.configure(order=data.draw(st.sampled_from(ORDERS)), seed=data.draw(st.integers(0, 99)),
                          cap=(0, data.draw(st.sampled_from([0, 1, 2])), 0), garbage=-1)
    net = CudaNet(circuit, memory_bytes=data.draw(st.sampled_from([1, 4096, None])), runtime=runtime_emu.lib)
    got = net(_inputs(circuit, x, kind))
    runtime_emu.check()
    assert np.array_equal(got, simulate(circuit, x))


def test_runtime_chunks_levels_and_workspace(runtime_emu):
    circuit = random_layered_circuit(40, [300, 200, 120], num_classes=6, tau=1.0, seed=7)
    x = np.random.default_rng(1).random((1000, 40)) < 0.5
    expected = simulate(circuit, x)
    for memory, order in ((1, "reverse"), (3 * 1024, "shuffled"), (None, "forward")):
        runtime_emu.configure(order=order, seed=3, cap=(0, 2, 0), garbage=-1)
        net = CudaNet(circuit, memory_bytes=memory, runtime=runtime_emu.lib)
        assert np.array_equal(net(x), expected)
        assert np.array_equal(net(pack_bits(x)), expected)  # the workspace is reused by a second call
        runtime_emu.check()
        del net
    assert runtime_emu.live_allocations() == 0  # every cudaMalloc freed with its net


def test_runtime_group_sum_split_across_threads(runtime_emu):
    """Few words and large groups: each class's group is split into parts whose counts are added
    atomically into zeroed scores; the oracle's scores also with the parts' grid dimension capped
    (the kernel strides over parts), and a mutant that stores a part's counts instead of adding
    them is caught (so the split path is the one exercised)."""
    circuit = random_layered_circuit(30, [600, 1000], num_classes=5, tau=1.0, seed=3)  # 200 outputs per class
    x = np.random.default_rng(2).random((130, 30)) < 0.5
    expected = simulate(circuit, x)
    for cap, order in (((0, 0, 0), "forward"), ((0, 1, 1), "reverse"), ((0, 2, 3), "shuffled")):
        runtime_emu.configure(order=order, seed=5, cap=cap, garbage=-1)
        assert np.array_equal(CudaNet(circuit, runtime=runtime_emu.lib)(x), expected)
        runtime_emu.check()
    runtime_emu.configure()
    mutant = _planted("atomicAdd(&scores[(s0 + j) * k + c], cnt);", "scores[(s0 + j) * k + c] = cnt;")
    mutant.configure()
    assert not np.array_equal(CudaNet(circuit, runtime=mutant.lib)(x), expected)


# ---------------------------------------------------------------- planted faults are caught

def _planted(old: str, new: str) -> cuda_emu.Emulator:
    source = (REPO / "cuda" / "runtime.cu").read_text()
    assert source.count(old) == 1, old
    return emulator("runtime.cu", source.replace(old, new))


@pytest.mark.parametrize("old,new", [
    ("((0 - ((t >> 2) & 1)) & ~a & b)", "((0 - ((t >> 1) & 1)) & ~a & b)"),  # one truth-table bit misread
    ("for (int j = 0; j < m; ++j) {", "for (int j = 0; j < m - 1; ++j) {"),  # readout misses a sample
])
def test_planted_fault_is_caught(old, new):
    mutant = _planted(old, new)
    circuit = random_layered_circuit(16, [60, 40], num_classes=4, tau=1.0, seed=2)
    x = np.random.default_rng(0).random((130, 16)) < 0.5
    mutant.configure()
    net = CudaNet(circuit, runtime=mutant.lib)
    assert not np.array_equal(net(x), simulate(circuit, x))


def test_runtime_refuses_bad_tables(runtime_emu):
    """The C entry point checks slot indices itself (a bad table is an error, not an illegal address)."""
    circuit = random_layered_circuit(8, [10], num_classes=2, tau=1.0, seed=0)
    net = CudaNet(circuit, runtime=runtime_emu.lib)
    rows = net.tables.rows.copy()
    rows[0, 0] = net.tables.num_slots  # out of range
    handle = ctypes.c_void_p()
    t = net.tables
    rc = runtime_emu.lib.lgc_cu_net_create(t.num_inputs, t.num_slots, rows.shape[0], rows.ctypes.data, t.num_levels,
                                           t.level_bounds.ctypes.data, t.out_slots.size, t.out_slots.ctypes.data, t.k,
                                           ctypes.byref(handle))
    assert rc == -1 and not handle.value


def test_runtime_launch_shapes_are_bounded(runtime_emu):
    """One launch per level plus the readout per chunk; a wide level at a large batch loops its
    blocks over rows instead of asking for one tiny block per row (counted, not run)."""
    circuit = random_layered_circuit(100, [3000, 3000], num_classes=10, tau=1.0, seed=1)
    n = 1 << 17
    runtime_emu.configure(execute=False, garbage=0)
    net = CudaNet(circuit, runtime=runtime_emu.lib)
    net(PackedBits(np.zeros((100, n // 64), np.uint64), n))
    counts = runtime_emu.counters()
    runtime_emu.check()
    chunks = -(-(n // 64) // net.chunk_words)
    assert counts["launches"] == chunks * (net.tables.num_levels + 1)
    cw = min(net.chunk_words, n // 64)
    parts = 1  # the readout's split of each class's 300 outputs (group_sum_parts in runtime.cu)
    while parts < 1024 and parts * 64 <= 300 and cw * 10 * parts < 1 << 18:
        parts *= 2
    level_blocks = counts["blocks"] - chunks * 10 * -(-cw // 64) * -(-300 // -(-300 // parts))  # less the readout's
    assert level_blocks <= chunks * net.tables.num_levels * 16384
    runtime_emu.configure()


def test_gpu_benchmark_dry_run_end_to_end(tmp_path, monkeypatch):
    """benchmarks/gpu.py's every section on the emulator, so the one shot on a GPU is the only untested step."""
    need("cuda-emu", None if cuda_emu.compiler() else "no C++ compiler for the CUDA emulator")
    import importlib.util
    import json
    spec = importlib.util.spec_from_file_location("gpu_benchmark", REPO / "benchmarks" / "gpu.py")
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    monkeypatch.setenv("OUT", str(tmp_path))
    assert gpu.main(["--dry-run"]) == 0
    result = json.loads((tmp_path / "gpu.json").read_text())
    sections = result["sections"]
    assert {"versions", "runtime build", "runtime throughput", "bool-row paths", "training kernels",
            "conv kernels"} <= set(sections)
    assert not [name for name, v in sections.items() if isinstance(v["result"], dict) and "error" in v["result"]]
    assert all(c["ok"] for c in sections["training kernels"]["result"]["checks"])
    assert all(r["checked_samples"] > 0 for r in sections["runtime throughput"]["result"])
    assert result["failures"] == []
