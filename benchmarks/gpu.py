"""GPU figures for lgc in one shot: the ``cuda`` target (packed-bits runtime) and the CUDA training
kernels, each checked against its CPU reference, on a fresh GPU machine (Python, numpy, nvcc; torch
with CUDA adds the tensor paths, the training step and the conv kernels; cffi not needed).

    python benchmarks/gpu.py             # on a GPU machine: about 4 minutes on one H200, build included
    python benchmarks/gpu.py --dry-run   # anywhere with g++: the same script on the CPU emulation of
                                         # CUDA (tools/cuda_emu), small sizes, about a minute

The script sets its own import path (no PYTHONPATH needed), prints the driver, CUDA, compiler and
torch versions, and runs in sections — versions, runtime build, runtime throughput (48K and 1M-gate
random MNIST-shaped nets, O0 and O2, batch 2^16 .. 2^22 on packed words already on the device; CUDA
events, median of several runs per input set; the workspace is allocated by an untimed run first),
bool-row paths, training kernels (forward and gradients against the CPU implementation, then the
step time of 784 -> 6 x 8000 and 8 x 16000 -> 10 at batch 100 and 1024 against the CPU kernel
on the machine's cores), conv kernels (forward and gradients of
LogicConv2d against the CPU kernel, and their time). Each section catches its own errors, and the
JSON (``$OUT/gpu.json`` when OUT is set, else ``benchmarks/out/gpu.json``) is rewritten after every
section, so one failure loses no figure. Exits 1 if any check failed or a section crashed, 2 when
the cuda target is unavailable (and not a dry run).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
import traceback
import zlib
from typing import Any, Callable

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

import numpy as np  # noqa: E402

K = 10
CHECK = 1024
SETS = 3


class Run:
    """Sizes and the runtime library for a real run or a dry run on the emulator."""

    def __init__(self, dry_run: bool):
        self.dry_run = dry_run
        self.batch_exps = range(10, 13) if dry_run else range(16, 23)
        self.widths = (("48K-like", 200),) if dry_run else (("48K", 8000), ("1M", 166670))
        self.time_budget_s = 60 if dry_run else 200
        self.t_start = time.perf_counter()
        self.failures: list[str] = []
        self.result: dict[str, Any] = {"command": "python benchmarks/gpu.py" + (" --dry-run" if dry_run else ""),
                                       "dry_run": dry_run, "sections": {}, "failures": self.failures}
        self._lib = None
        self._emulators: dict[str, Any] = {}

    def emulator(self, name: str):
        if name not in self._emulators:
            import cuda_emu
            self._emulators[name] = cuda_emu.load(name)
        return self._emulators[name]

    def runtime(self):
        """The runtime library: the nvcc build, or the emulated one in a dry run."""
        if self._lib is None:
            from lgc.backends import cuda
            self._lib = cuda.bind(self.emulator("runtime.cu").lib) if self.dry_run else cuda.library()
        return self._lib

    def net(self, circuit, memory_bytes: int | None = None):
        from lgc.backends.cuda import CudaNet
        return CudaNet(circuit, memory_bytes=memory_bytes, runtime=self._lib if self.dry_run else None)

    def over_budget(self) -> bool:
        return time.perf_counter() - self.t_start > self.time_budget_s

    def save(self) -> None:
        self.result["total_s"] = time.perf_counter() - self.t_start
        out_path().write_text(json.dumps(self.result, indent=2, default=str))

    def section(self, name: str, fn: Callable[["Run"], Any]) -> Any:
        """Run one section; record its result or its error; write the JSON either way."""
        print(f"\n== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            value = fn(self)
        except Exception as e:
            value = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
            self.failures.append(f"section {name!r} crashed: {type(e).__name__}: {e}")
            print(f"   section crashed: {type(e).__name__}: {e}")
        entry = self.result["sections"].setdefault(name, {})  # may hold the section's partial figures
        entry.update(seconds=time.perf_counter() - t0, result=value)
        self.save()
        return value


def out_path() -> pathlib.Path:
    root = os.environ.get("OUT")
    d = pathlib.Path(root) if root else REPO / "benchmarks" / "out"
    d.mkdir(parents=True, exist_ok=True)
    return d / "gpu.json"


def _command_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip()
        return out.splitlines()[-1] if out else "?"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def versions(run: Run) -> dict:
    from lgc.backends._common import default_threads
    from lgc.backends.cuda import nvcc_path
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "?") if os.path.exists("/proc/cpuinfo") else platform.processor()
    info = {"cpu": cpu, "cores": default_threads(), "python": platform.python_version(), "numpy": np.__version__,
            "gpu": _command_line(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                  "--format=csv,noheader"]),
            "nvcc": _command_line([nvcc_path() or "nvcc", "--version"])}
    try:
        drv = ctypes.CDLL("libcuda.so.1")
        v = ctypes.c_int(0)
        drv.cuDriverGetVersion(ctypes.byref(v))
        info["driver_cuda_version"] = f"{v.value // 1000}.{v.value % 1000 // 10}"
    except OSError:
        info["driver_cuda_version"] = "no driver"
    try:
        import torch
        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
        info["torch_sees_gpu"] = torch.cuda.is_available()
    except ImportError:
        info["torch"] = "not installed"
    for k, v in info.items():
        print(f"   {k}: {v}")
    return info


def runtime_build(run: Run) -> dict:
    t0 = time.perf_counter()
    run.runtime()
    s = time.perf_counter() - t0
    what = "g++ build of the emulated runtime" if run.dry_run else "nvcc sm_80, sm_90, compute_90 PTX"
    print(f"   runtime build + load ({what}; cached afterwards): {s:.1f} s")
    return {"build_s": s, "what": what}


class DeviceBuffer:
    """cudaMalloc'd bytes through the runtime (no torch needed)."""

    def __init__(self, lib, nbytes: int):
        from lgc.backends.cuda import check
        self.lib, self.ptr, self.nbytes = lib, ctypes.c_void_p(), nbytes
        check(lib.lgc_cu_malloc(ctypes.byref(self.ptr), nbytes), f"cudaMalloc({nbytes})", lib)

    def at(self, offset: int) -> int:
        return (self.ptr.value or 0) + offset

    def upload(self, arr: np.ndarray) -> None:
        from lgc.backends.cuda import check
        arr = np.ascontiguousarray(arr)
        check(self.lib.lgc_cu_memcpy(self.ptr, arr.ctypes.data, arr.nbytes), "upload", self.lib)

    def download(self, offset: int, out: np.ndarray) -> np.ndarray:
        from lgc.backends.cuda import check
        check(self.lib.lgc_cu_memcpy(out.ctypes.data, self.at(offset), out.nbytes), "download", self.lib)
        return out

    def free(self) -> None:
        self.lib.lgc_cu_free(self.ptr)


def _bench_net(run: Run, name: str, circuit) -> list[dict]:
    from lgc.backends.cuda import check
    from lgc.ir import PackedBits, simulate
    lib = run.runtime()
    t0 = time.perf_counter()
    net = run.net(circuit)
    upload_s = time.perf_counter() - t0
    n_in, n_max = circuit.num_inputs, 1 << max(run.batch_exps)
    w_max = n_max // 64
    x_dev, out_dev = DeviceBuffer(lib, n_in * w_max * 8), DeviceBuffer(lib, n_max * K * 4)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    # untimed: the grow-only workspace is allocated for the largest batch before any timing
    check(lib.lgc_cu_run(net._handle, x_dev.at(0), 3, w_max, n_max, out_dev.at(0), 1, net.chunk_words, None),
          "warm-up", lib)
    check(lib.lgc_cu_synchronize(), "synchronize", lib)
    times: dict[int, list[float]] = {}
    checked: dict[int, int] = {}
    for s in range(SETS):
        host = rng.integers(0, np.iinfo(np.uint64).max, size=(n_in, w_max), dtype=np.uint64, endpoint=True)
        x_dev.upload(host)
        for e in run.batch_exps:
            n = 1 << e
            if run.over_budget() and n in times:
                continue
            reps = 5 if n <= (1 << 20) else 3
            ms = (ctypes.c_float * reps)()
            check(lib.lgc_cu_time_runs(net._handle, x_dev.at(0), 3, w_max, n, out_dev.at(0), net.chunk_words,
                                       reps, ms), f"{name} n={n}", lib)
            times.setdefault(n, []).extend(ms)
            whole = s == 0 and n == 1 << min(run.batch_exps) and circuit.num_gates <= 100_000
            for lo, hi in [(0, n)] if whole else [(0, CHECK), (n - CHECK, n)]:
                got = out_dev.download(lo * K * 4, np.empty((hi - lo, K), dtype=np.int32))
                want = simulate(circuit, PackedBits(np.ascontiguousarray(host[:, lo // 64:hi // 64]), hi - lo))
                checked[n] = checked.get(n, 0) + (hi - lo)
                if not np.array_equal(got, want):
                    bad = int(np.flatnonzero((got != want).any(axis=1))[0]) + lo
                    run.failures.append(f"{name} n={n} set {s}: sample {bad} differs from simulate")
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
    return rows


def runtime_throughput(run: Run) -> list[dict]:
    import lgc
    from lgc.backends.bench import mnist_shaped
    print(f"   {'net':9s} {'gates':>8s} {'batch':>8s} {'chunk':>6s} {'median ms':>10s} {'samples/s':>10s} "
          f"{'gate-evals/s':>12s} {'checked':>8s}")
    rows = []
    for label, width in run.widths:
        raw = mnist_shaped(width)
        for name, circuit in ((f"{label} O0", raw), (f"{label} O2", lgc.optimize(raw, level=2))):
            for r in _bench_net(run, name, circuit):
                print(f"   {name:9s} {r['gates']:8d} {r['batch']:8d} {r['chunk_words']:6d} {r['median_s'] * 1e3:10.3f} "
                      f"{r['samples_per_s']:10.3g} {r['gate_evals_per_s']:12.3g} {r['checked_samples']:8d}", flush=True)
                rows.append(r)
            run.result["sections"]["runtime throughput"] = {"partial": rows}  # kept if a later net crashes
            run.save()
    return rows


def rows_paths(run: Run) -> list[dict]:
    """Bool rows: numpy (host round trip) and, with torch CUDA, device tensors (pack kernel included)."""
    from lgc.backends.bench import mnist_shaped
    from lgc.ir import simulate
    import lgc
    circuit = lgc.optimize(mnist_shaped(run.widths[0][1]), level=2)
    net = run.net(circuit)
    rng = np.random.default_rng(7)
    x = rng.random((1 << min(run.batch_exps), circuit.num_inputs)) < 0.5
    net(x[:64])
    t0 = time.perf_counter()
    got = net(x)
    dt = time.perf_counter() - t0
    if not np.array_equal(got, simulate(circuit, x)):
        run.failures.append("numpy bool rows path differs from simulate")
    out = [{"path": "numpy bool rows (host round trip)", "batch": x.shape[0], "seconds": dt,
            "samples_per_s": x.shape[0] / dt}]
    torch = _torch_cuda()
    if torch is None or run.dry_run:
        out.append({"path": "torch CUDA bool rows", "skipped": "dry run" if run.dry_run else "torch without CUDA"})
    else:
        n = 1 << 20
        xt = torch.rand((n, circuit.num_inputs), device="cuda") < 0.5
        net(xt[:1024])
        ts, res = [], None
        for _ in range(5):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            res = net(xt)
            stop.record()
            torch.cuda.synchronize()
            ts.append(start.elapsed_time(stop) / 1e3)
        if not (res.is_cuda and np.array_equal(res[-CHECK:].cpu().numpy(), simulate(circuit, xt[-CHECK:].cpu().numpy()))):
            run.failures.append("torch CUDA bool rows path differs from simulate")
        med = statistics.median(ts)
        out.append({"path": "torch CUDA bool rows (pack kernel included)", "batch": n, "seconds": med,
                    "samples_per_s": n / med})
    for p in out:
        print(f"   {p['path']}: " + (f"{p['samples_per_s']:.3g} samples/s (batch {p['batch']})"
                                     if "samples_per_s" in p else f"skipped ({p['skipped']})"))
    return out


def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def _max_diff(a, b) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def training_kernels(run: Run) -> dict:
    """Forward and gradients of one relaxed layer against the CPU/python implementation, both dtypes,
    gates reading one node twice; then (on a GPU) the training step of 784 -> 6 x 8000 -> 10."""
    import functools
    import torch
    from lgc.frontend import kernels
    if run.dry_run:
        backend = kernels._CudaBackend(run.emulator("logic_layer.cu").lib, device_type="cpu")
        device = "cpu"
    else:
        if _torch_cuda() is None:
            return {"skipped": "torch has no CUDA"}
        backend, device = kernels.cuda_backend(), "cuda"
    impl = kernels.Implementation("cuda", kernels.gate_coefficients, functools.partial(kernels.kernel_logic, backend))
    result: dict[str, Any] = {"checks": []}
    gen = torch.Generator().manual_seed(0)
    for dtype, tol in ((torch.float32, 1e-4), (torch.float64, 1e-10)):
        for batch, in_dim, out_dim in ((1, 5, 7), (100, 300, 500), (257, 64, 301)):
            x = torch.rand(batch, in_dim, dtype=dtype, generator=gen)
            w = torch.randn(out_dim, 16, dtype=dtype, generator=gen)
            a = torch.randint(0, in_dim, (out_dim,), generator=gen)
            b = torch.randint(0, in_dim, (out_dim,), generator=gen)
            b[::3] = a[::3]
            got = _step(impl, x.to(device), w.to(device), a.to(device), b.to(device))
            want = _step(kernels.PYTHON, x, w, a, b)
            diffs = [_max_diff(g.cpu(), e) for g, e in zip(got, want)]
            ok = all(d <= tol * 10 for d in diffs)
            result["checks"].append({"dtype": str(dtype), "shape": [batch, in_dim, out_dim],
                                     "max_abs_diff_y_gx_gw": diffs, "ok": ok})
            if not ok:
                run.failures.append(f"training kernels {dtype} {batch}x{in_dim}->{out_dim}: diffs {diffs}")
    print(f"   forward/gradient checks: {sum(c['ok'] for c in result['checks'])}/{len(result['checks'])} agree")
    if not run.dry_run:
        result["step"] = _training_step()
    return result


def _step(impl, x, w, a, b):
    import torch
    x = x.clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)
    y = impl.logic(x, impl.coefficients(w, False), a, b, 1.0)
    g = torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(1)).to(y.device)
    (y * g).sum().backward()
    return y.detach(), x.grad, w.grad


TRAIN_CONFIGS = ((6, 8000, 100), (6, 8000, 1024), (8, 16000, 100), (8, 16000, 1024))


def _training_step() -> dict:
    """Step time (forward + backward + Adam(fused=True)) of 784 -> depth x width -> GroupSum(10) on
    the CUDA kernels against lgc's CPU kernel on the same machine's cores (torch's default thread
    count; the kernel's pool as many threads), same weights and batch; medians after warm-up."""
    import copy
    import torch
    from lgc.frontend import GroupSum, LogicLayer, kernels
    threads = os.cpu_count() or 1
    kernels.set_num_threads(threads)
    rows = []
    for depth, width, batch in TRAIN_CONFIGS:
        torch.manual_seed(0)
        cpu_model = torch.nn.Sequential(LogicLayer(784, width, implementation="cpu"),
                                        *[LogicLayer(width, width, implementation="cpu") for _ in range(depth - 1)],
                                        GroupSum(10, tau=10.0))
        gpu_model = copy.deepcopy(cpu_model).cuda()
        for m in gpu_model.modules():
            if isinstance(m, LogicLayer):
                m.implementation = "cuda"
        x, y = torch.rand(batch, 784), torch.randint(0, 10, (batch,))
        row: dict[str, Any] = {"model": f"784 -> {depth} x {width} -> 10", "batch": batch, "cpu_threads": threads}
        for name, model, dev in (("cuda", gpu_model, "cuda"), ("cpu", cpu_model, "cpu")):
            opt = torch.optim.Adam(model.parameters(), lr=0.01, fused=True)
            xd, yd = x.to(dev), y.to(dev)
            ts = []
            for i in range(22 if dev == "cuda" else 7):
                if dev == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(xd), yd).backward()
                opt.step()
                if dev == "cuda":
                    torch.cuda.synchronize()
                if i >= 2:
                    ts.append(time.perf_counter() - t0)
            row[f"{name}_step_s"] = statistics.median(ts)
            row[f"{name}_samples_per_s"] = batch / row[f"{name}_step_s"]
        row["speedup"] = row["cpu_step_s"] / row["cuda_step_s"]
        row["cuda_busy"] = _gpu_busy(gpu_model, x.cuda(), y.cuda())
        row["cuda_graph"] = _graph_step(copy.deepcopy(gpu_model), x.cuda(), y.cuda())
        rows.append(row)
        print(f"   step {row['model']}, batch {batch}: cuda {row['cuda_step_s'] * 1e3:.2f} ms "
              f"({row['cuda_samples_per_s']:.3g} samples/s), cpu x{threads} {row['cpu_step_s'] * 1e3:.1f} ms "
              f"({row['speedup']:.1f}x)", flush=True)
        busy = row["cuda_busy"]
        if "kernel_ms_per_step" in busy:
            print(f"      cuda step: kernels {busy['kernel_ms_per_step']:.3f} ms of {busy['wall_ms_per_step']:.3f} ms "
                  f"({busy['launches_per_step']:.0f} launches/step); top: {busy['top']}", flush=True)
        else:
            print(f"      cuda step profile unavailable: {busy.get('error')}", flush=True)
        graph = row["cuda_graph"]
        print("      cuda step as one CUDA graph: " + (f"{graph['step_ms']:.3f} ms" if "step_ms" in graph
                                                       else f"not captured ({graph.get('error')})"), flush=True)
        del cpu_model, gpu_model
    return {"rows": rows}


def _gpu_busy(model, x, y, steps: int = 5) -> dict:
    """Where a CUDA training step's time goes: the summed device time of its kernels (torch.profiler,
    CUPTI) against the step's wall time, the launches per step and the costliest kernels."""
    import torch
    try:
        from torch.profiler import ProfilerActivity, profile
        opt = torch.optim.Adam(model.parameters(), lr=0.01, fused=True)

        def step():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        step()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            torch.cuda.synchronize()
            wall = (time.perf_counter() - t0) / steps
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        total_us = sum(e.device_time for e in kernels)
        by_name: dict[str, float] = {}
        for e in kernels:
            by_name[e.name] = by_name.get(e.name, 0.0) + e.device_time
        top = sorted(by_name.items(), key=lambda kv: -kv[1])[:4]
        return {"kernel_ms_per_step": total_us / 1e3 / steps, "wall_ms_per_step": wall * 1e3,
                "launches_per_step": len(kernels) / steps,
                "top": [f"{n[:40]} {us / 1e3 / steps:.3f} ms" for n, us in top]}
    except Exception as exc:  # the profiler's CUPTI may be unavailable in the machine's sandbox
        return {"error": f"{type(exc).__name__}: {exc}"}


def _graph_step(model, x, y, reps: int = 20) -> dict:
    """The same step captured whole as one CUDA graph (torch.cuda.graph: forward, backward and a
    capturable fused Adam) and replayed: what the step costs without per-launch host work."""
    import torch
    try:
        opt = torch.optim.Adam(model.parameters(), lr=0.01, fused=True, capturable=True)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on a side stream, as torch's capture recipe asks
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        graph.replay()
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            graph.replay()
        stop.record()
        torch.cuda.synchronize()
        return {"step_ms": start.elapsed_time(stop) / reps}
    except Exception as exc:  # a launch that syncs with the host cannot be captured: say which
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}


def conv_kernels(run: Run) -> dict:
    """LogicConv2d forward and gradients on the CUDA kernel against the CPU kernel; time per call."""
    import torch
    from lgc.frontend.conv import LogicConv2d
    from lgc.frontend.conv_kernels import _ConvLib, cpu_library
    if run.dry_run:
        cuda_lib, device = _ConvLib(run.emulator("logic_conv.cu").lib, cuda=True, device_type="cpu"), "cpu"
    else:
        if _torch_cuda() is None:
            return {"skipped": "torch has no CUDA"}
        from lgc.frontend.conv_kernels import cuda_library
        cuda_lib, device = cuda_library(), "cuda"
    batch = 4 if run.dry_run else 128
    result: dict[str, Any] = {"checks": []}
    shapes = ((1, 4, 3, 10), (4, 8, 3, 6)) if run.dry_run else ((1, 12, 3, 20), (12, 48, 3, 9))
    for c, o, depth, h in shapes:
        torch.manual_seed(o)
        layer = LogicConv2d(c, o, 3, depth=depth, implementation="cpu")
        x = torch.rand(batch, c, h, h)
        grad = torch.randn(batch, o, *layer.output_size((h, h)))

        def fwd_bwd(lib, dev):
            m = layer.to(dev)
            m._kernel = lambda _x: lib
            xi = x.to(dev).requires_grad_(True)
            if dev == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            yv = m(xi)
            gx, gw = torch.autograd.grad(yv, (xi, m.weights), grad.to(dev))
            if dev == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            del m._kernel
            return [t.detach().cpu() for t in (yv, gx, gw)], dt

        fwd_bwd(cuda_lib, device)  # warm-up: build, first-touch allocations
        got, dt_cuda = fwd_bwd(cuda_lib, device)
        want, dt_cpu = fwd_bwd(cpu_library(), "cpu")
        diffs = [_max_diff(g, e) for g, e in zip(got, want)]
        ok = all(d <= 1e-3 for d in diffs)
        result["checks"].append({"shape": [batch, c, h, h, o, depth], "max_abs_diff_y_gx_gw": diffs, "ok": ok,
                                 "cuda_s": dt_cuda, "cpu_s": dt_cpu})
        if not ok:
            run.failures.append(f"conv kernels {c}->{o} depth {depth}: diffs {diffs}")
        print(f"   conv {c}->{o} depth {depth} on {h}x{h}, batch {batch}: max |diff| {max(diffs):.2e}; "
              f"forward+backward {'emulated' if run.dry_run else 'cuda'} {dt_cuda * 1e3:.1f} ms, cpu {dt_cpu * 1e3:.1f} ms")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="run every section on the CPU emulation of CUDA (tools/cuda_emu), small sizes")
    args = parser.parse_args(argv)
    run = Run(args.dry_run)
    run.result["versions"] = run.section("versions", versions)
    from lgc.backends import cuda
    why = None if args.dry_run else cuda.available()
    if why is not None:
        print(f"the cuda target is unavailable here: {why} (try --dry-run)")
        run.result["unavailable"] = why
        run.save()
        return 2
    run.section("runtime build", runtime_build)
    if run.failures:  # no runtime: nothing below can run
        return 1
    run.section("runtime throughput", runtime_throughput)
    run.section("bool-row paths", rows_paths)
    run.section("training kernels", training_kernels)
    run.section("conv kernels", conv_kernels)
    print(f"\ntotal {time.perf_counter() - run.t_start:.0f} s; wrote {out_path()}")
    if run.failures:
        print("CHECK FAILURES:\n  " + "\n  ".join(run.failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
