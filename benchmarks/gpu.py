"""GPU throughput of the ``cuda`` target (the packed-bits runtime), checked against lgc.ir.simulate.

Runs with no arguments on a machine with an NVIDIA GPU and nvcc (budget: < 5 minutes on one
H200, build included). For random MNIST-shaped networks (784 -> 6 x 8000 -> 10, 48K gates, and
784 -> 6 x 166670 -> 10, 1M gates), raw (O0) and optimised (O2): uploads the circuit, then for
batch sizes 2^16 .. 2^22 (run in chunks sized by the net's memory budget) times the runtime with
CUDA events on packed input words already on the device (median of REPS runs on each of SETS
random input sets) and checks the first and last CHECK samples of every run against
lgc.ir.simulate (the whole batch for the smallest one on the 48K net). Also: the bool-rows paths
(numpy host round trip; CUDA torch tensors when torch has CUDA), and the frontend's training
step (forward + backward + Adam) with the CUDA kernels against the CPU implementation when
torch has CUDA. Prints a table; writes gpu.json to $OUT if set, else benchmarks/out/.
Exits 1 if any check fails, 2 when the cuda target is unavailable here.
"""
from __future__ import annotations

import ctypes
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
import zlib

import numpy as np

SETS = 3
BATCH_EXPS = range(16, 23)
CHECK = 1024
TIME_BUDGET_S = 220  # stop adding larger batches past this, so the script stays under 5 minutes
K = 10


def out_path() -> pathlib.Path:
    root = os.environ.get("OUT")
    d = pathlib.Path(root) if root else pathlib.Path(__file__).resolve().parent / "out"
    d.mkdir(parents=True, exist_ok=True)
    return d / "gpu.json"


def machine() -> dict:
    from lgc.backends._common import default_threads
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "?") if os.path.exists("/proc/cpuinfo") else platform.processor()
    gpu = "?"
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        pass
    nvcc = ""
    try:
        from lgc.backends.cuda import nvcc_path
        nvcc = subprocess.run([nvcc_path(), "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
    except Exception:
        pass
    return {"cpu": cpu, "cores": default_threads(), "gpu": gpu, "nvcc": nvcc, "python": platform.python_version()}


class DeviceBuffer:
    """cudaMalloc'd bytes through the runtime (no torch needed)."""

    def __init__(self, lib, nbytes: int):
        from lgc.backends.cuda import check
        self.lib, self.ptr = lib, ctypes.c_void_p()
        check(lib.lgc_cu_malloc(ctypes.byref(self.ptr), nbytes), f"cudaMalloc({nbytes})")
        self.nbytes = nbytes

    def at(self, offset: int) -> int:
        return (self.ptr.value or 0) + offset

    def upload(self, arr: np.ndarray) -> None:
        from lgc.backends.cuda import check
        arr = np.ascontiguousarray(arr)
        check(self.lib.lgc_cu_memcpy(self.ptr, arr.ctypes.data, arr.nbytes), "upload")

    def download(self, offset: int, out: np.ndarray) -> np.ndarray:
        from lgc.backends.cuda import check
        check(self.lib.lgc_cu_memcpy(out.ctypes.data, self.at(offset), out.nbytes), "download")
        return out

    def free(self) -> None:
        self.lib.lgc_cu_free(self.ptr)


def random_words(rng: np.random.Generator, bits: int, words: int) -> np.ndarray:
    return rng.integers(0, np.iinfo(np.uint64).max, size=(bits, words), dtype=np.uint64, endpoint=True)


def bench_net(name: str, circuit, lib, failures: list, t_start: float) -> list[dict]:
    from lgc.backends import cuda
    from lgc.backends.cuda import check
    from lgc.ir import PackedBits, simulate

    t0 = time.perf_counter()
    net = cuda.build(circuit)
    upload_s = time.perf_counter() - t0
    n_in = circuit.num_inputs
    w_max = (1 << max(BATCH_EXPS)) // 64
    x_dev = DeviceBuffer(lib, n_in * w_max * 8)
    out_dev = DeviceBuffer(lib, (1 << max(BATCH_EXPS)) * K * 4)
    times: dict[int, list[float]] = {}
    checked: dict[int, int] = {}
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    skipped = []
    for s in range(SETS):
        host = random_words(rng, n_in, w_max)
        x_dev.upload(host)
        for e in BATCH_EXPS:
            n = 1 << e
            if time.perf_counter() - t_start > TIME_BUDGET_S:
                if n not in times and n not in skipped:
                    skipped.append(n)
                continue
            reps = 5 if n <= (1 << 20) else 3
            ms = (ctypes.c_float * reps)()
            check(lib.lgc_cu_time_runs(net._handle, x_dev.at(0), 3, w_max, n, out_dev.at(0), net.chunk_words,
                                       reps, ms), f"{name} n={n}")
            times.setdefault(n, []).extend(ms)
            windows = [(0, n)] if (s == 0 and n == 1 << min(BATCH_EXPS) and circuit.num_gates <= 100_000) \
                else [(0, CHECK), (n - CHECK, n)]
            for lo, hi in windows:
                got = out_dev.download(lo * K * 4, np.empty((hi - lo, K), dtype=np.int32))
                want = simulate(circuit, PackedBits(np.ascontiguousarray(host[:, lo // 64:hi // 64]), hi - lo))
                checked[n] = checked.get(n, 0) + (hi - lo)
                if not np.array_equal(got, want):
                    bad = int(np.flatnonzero((got != want).any(axis=1))[0]) + lo
                    failures.append(f"{name} n={n} set {s}: sample {bad} differs from simulate")
    x_dev.free()
    out_dev.free()
    rows = []
    for n in sorted(times):
        med = statistics.median(times[n]) / 1e3
        rows.append({"net": name, "gates": circuit.num_gates, "batch": n, "chunk_words": net.chunk_words,
                     "slots": net.tables.num_slots, "levels": net.tables.num_levels, "runs": len(times[n]),
                     "median_s": med, "min_s": min(times[n]) / 1e3, "samples_per_s": n / med,
                     "gate_evals_per_s": n * circuit.num_gates / med, "checked_samples": checked.get(n, 0),
                     "upload_s": upload_s})
    for n in skipped:
        rows.append({"net": name, "gates": circuit.num_gates, "batch": n, "skipped": "time budget"})
    return rows


def bench_rows_paths(circuit, failures: list) -> list[dict]:
    """bool rows: numpy (host round trip) and, with torch CUDA, device tensors (pack kernel included)."""
    from lgc.backends import cuda
    from lgc.ir import simulate
    net = cuda.build(circuit)
    rng = np.random.default_rng(7)
    out = []
    x = rng.random((1 << 16, circuit.num_inputs)) < 0.5
    net(x[:1024])
    t0 = time.perf_counter()
    got = net(x)
    dt = time.perf_counter() - t0
    if not np.array_equal(got, simulate(circuit, x)):
        failures.append("numpy bool rows path differs from simulate")
    out.append({"path": "numpy bool rows (host round trip)", "batch": x.shape[0], "seconds": dt,
                "samples_per_s": x.shape[0] / dt})
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        out.append({"path": "torch CUDA bool rows", "skipped": "torch without CUDA"})
        return out
    n = 1 << 20
    xt = torch.rand((n, circuit.num_inputs), device="cuda") < 0.5
    net(xt[:1024])
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ts = []
    for _ in range(5):
        start.record()
        res = net(xt)
        stop.record()
        torch.cuda.synchronize()
        ts.append(start.elapsed_time(stop) / 1e3)
    sub = xt[-CHECK:].cpu().numpy()
    if not (res.is_cuda and np.array_equal(res[-CHECK:].cpu().numpy(), simulate(circuit, sub))):
        failures.append("torch CUDA bool rows path differs from simulate")
    med = statistics.median(ts)
    out.append({"path": "torch CUDA bool rows (pack kernel included)", "batch": n, "seconds": med,
                "samples_per_s": n / med})
    return out


def bench_training(failures: list) -> dict:
    """Training step (forward, backward, Adam) of 784 -> 6 x 8000 -> GroupSum(10): CUDA kernels vs CPU."""
    try:
        import torch
    except ImportError:
        return {"skipped": "torch is not installed"}
    if not torch.cuda.is_available():
        return {"skipped": "torch has no CUDA"}
    try:
        from lgc.frontend import GroupSum, LogicLayer
        from lgc.frontend.kernels import cuda_backend
        cuda_backend()
    except Exception as e:  # the frontend offers no usable CUDA implementation here
        return {"skipped": f"frontend CUDA kernels unavailable: {type(e).__name__}: {e}"}
    import copy
    torch.manual_seed(0)
    layers = [LogicLayer(784, 8000)] + [LogicLayer(8000, 8000) for _ in range(5)]  # auto: the CPU kernel here
    cpu_model = torch.nn.Sequential(*layers, GroupSum(10, tau=10.0))
    gpu_model = copy.deepcopy(cpu_model).cuda()
    for m in gpu_model.modules():
        if isinstance(m, LogicLayer):
            m.implementation = "cuda"
    batch = 128
    x = torch.rand(batch, 784)
    y = torch.randint(0, 10, (batch,))
    with torch.no_grad():
        a, b = cpu_model(x), gpu_model(x.cuda()).cpu()
    diff = float((a - b).abs().max())
    if not torch.allclose(a, b, rtol=1e-4, atol=1e-3):
        failures.append(f"training forward: cuda vs cpu max abs diff {diff}")
    result = {"batch": batch, "forward_max_abs_diff": diff}
    for name, model, dev in (("cuda", gpu_model, "cuda"), ("cpu", cpu_model, "cpu")):
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        xd, yd = x.to(dev), y.to(dev)
        ts = []
        for i in range(12 if dev == "cuda" else 6):
            if dev == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xd), yd)
            loss.backward()
            opt.step()
            if dev == "cuda":
                torch.cuda.synchronize()
            if i >= 2:
                ts.append(time.perf_counter() - t0)
        result[f"{name}_step_s"] = statistics.median(ts)
    result["speedup"] = result["cpu_step_s"] / result["cuda_step_s"]
    return result


def main() -> int:
    t_start = time.perf_counter()
    import lgc
    from lgc.backends import cuda
    from lgc.backends.bench import mnist_shaped

    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores; GPU {info['gpu']}; {info['nvcc']}")
    why = cuda.available()
    if why is not None:
        print(f"the cuda target is unavailable here: {why}")
        out_path().write_text(json.dumps({"machine": info, "unavailable": why}, indent=2))
        return 2
    t0 = time.perf_counter()
    lib = cuda.library()
    build_s = time.perf_counter() - t0
    print(f"runtime build + load (nvcc sm_80, sm_90, compute_90 PTX; cached afterwards): {build_s:.1f} s")

    failures: list[str] = []
    nets = []
    for label, width in (("48K", 8000), ("1M", 166670)):
        raw = mnist_shaped(width)
        t0 = time.perf_counter()
        opt = lgc.optimize(raw, level=2)
        nets.append((f"{label} O0", raw, 0.0))
        nets.append((f"{label} O2", opt, time.perf_counter() - t0))
    rows = []
    header = (f"{'net':7s} {'gates':>8s} {'batch':>8s} {'chunk':>6s} {'median ms':>10s} {'samples/s':>10s} "
              f"{'gate-evals/s':>12s} {'vs 2^16':>7s} {'checked':>8s}")
    print(header)
    for name, circuit, opt_s in nets:
        net_rows = bench_net(name, circuit, lib, failures, t_start)
        base = next((r["samples_per_s"] for r in net_rows if "samples_per_s" in r), None)
        for r in net_rows:
            r["optimize_s"] = opt_s
            if "skipped" in r:
                print(f"{name:7s} {r['gates']:8d} {r['batch']:8d}  skipped ({r['skipped']})")
                continue
            print(f"{name:7s} {r['gates']:8d} {r['batch']:8d} {r['chunk_words']:6d} {r['median_s'] * 1e3:10.3f} "
                  f"{r['samples_per_s']:10.3g} {r['gate_evals_per_s']:12.3g} {r['samples_per_s'] / base:7.2f} "
                  f"{r['checked_samples']:8d}")
        rows.extend(net_rows)
    paths = bench_rows_paths(nets[1][1], failures)
    for p in paths:
        print(f"48K O2 {p['path']}: " + (f"{p['samples_per_s']:.3g} samples/s (batch {p['batch']})"
                                          if "samples_per_s" in p else f"skipped ({p['skipped']})"))
    try:
        training = bench_training(failures)
    except Exception as e:  # a frontend problem must not hide the runtime's figures
        training = {"skipped": f"error: {type(e).__name__}: {e}"}
    if "skipped" in training:
        print(f"training step: skipped ({training['skipped']})")
    else:
        print(f"training step 784 -> 6 x 8000 -> 10, batch {training['batch']}: cuda {training['cuda_step_s'] * 1e3:.1f} ms,"
              f" cpu {training['cpu_step_s'] * 1e3:.1f} ms ({training['speedup']:.1f}x); forward max |diff| "
              f"{training['forward_max_abs_diff']:.2e}")
    total = time.perf_counter() - t_start
    result = {"machine": info, "runtime_build_s": build_s, "throughput": rows, "rows_paths": paths,
              "training": training, "failures": failures, "total_s": total,
              "command": "python benchmarks/gpu.py"}
    out_path().write_text(json.dumps(result, indent=2))
    print(f"total {total:.0f} s; wrote {out_path()}")
    if failures:
        print("CHECK FAILURES:\n  " + "\n  ".join(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
