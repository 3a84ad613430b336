"""CPU throughput and compile time of every native CPU target vs the difflogic-style baseline.

Runs with no arguments. For random MNIST-shaped networks (784 -> 6 x 8000 -> 10, 6 x 64000,
and a ~1M-gate one) it compiles at the default opt level (O2) for each available target and
measures samples/s on a C-contiguous bool [131072, 784] batch (packing and readout included)
with threads=1 and with every core; then builds the baseline difflogic generates (one
straight-line C function, gcc -O1) for the 48K-gate network and reports the ratio. Every result
is checked against lgc.ir.simulate on 1024 samples. Writes benchmarks/out/throughput.json.
The native build cache is a fresh temporary directory, so kernel build times are cold.
Environment: LGC_BENCH_NETS=48K,384K,1M picks networks; LGC_BENCH_BASELINE=0 skips the baseline.
"""
from __future__ import annotations

import json
import os
import pathlib
import platform
import sys
import tempfile
import time

import numpy as np

OUT = pathlib.Path(__file__).resolve().parent / "out" / "throughput.json"
NETS = {"48K": 8000, "384K": 64000, "1M": 166670}
BATCH = 131072


def machine() -> dict:
    from lgc.backends._common import cpu_flags, default_threads
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?") \
        if os.path.exists("/proc/cpuinfo") else platform.processor()
    wanted = ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512vbmi", "avx512_vpopcntdq", "gfni")
    return {"cpu": model, "cores": default_threads(), "flags": [f for f in wanted if f in cpu_flags()],
            "load_average": os.getloadavg(), "python": platform.python_version()}


def main() -> int:
    os.environ["LGC_CACHE_DIR"] = tempfile.mkdtemp(prefix="lgc-bench-cache-")
    import lgc
    from lgc.backends import build, cpu_c, llvm
    from lgc.backends.bench import DifflogicBaseline, EmittedC, measure_throughput, mnist_shaped
    from lgc.ir import simulate

    info = machine()
    cores = info["cores"]
    print(f"machine: {info['cpu']}, {cores} cores, flags {' '.join(info['flags'])}, load {info['load_average']}")
    targets = [t for t in ("cpu-avx512", "cpu-avx2", "llvm", "c") if t in lgc.targets()]
    kernel_build = {}
    for t in targets:  # once per target (cached afterwards): the gcc build or the LLVM JIT
        t0 = time.perf_counter()
        (llvm._engine.__wrapped__() if t == "llvm" else cpu_c.library(t))  # a fresh JIT even if probed
        kernel_build[t] = time.perf_counter() - t0
    print("kernel build, once per target (cold cache): " + ", ".join(f"{t} {s:.2f} s" for t, s in kernel_build.items()))

    x = np.random.default_rng(0).random((BATCH, 784)) < 0.5
    nets = [n.strip() for n in os.environ.get("LGC_BENCH_NETS", ",".join(NETS)).split(",") if n.strip()]
    rows, failed = [], False
    header = (f"{'net':6s} {'gates':>9s} {'after O2':>9s} {'target':11s} {'compile s':>9s} {'1 thread':>12s} "
              f"{'1 thr, CPU t':>12s} {f'{cores} threads':>12s}  check")
    print(header)
    for name in nets:
        circuit = mnist_shaped(NETS[name])
        t0 = time.perf_counter()
        small = lgc.optimize(circuit, level=2)
        t_opt = time.perf_counter() - t0
        check = simulate(small, x[:1024])
        for target in targets + ["emitted C"]:   # lgc.export(.., "net.c"), gcc -O2, one thread (benchmarks/emitted_c.py)
            t0 = time.perf_counter()
            net = EmittedC(small) if target == "emitted C" else build(small, target, threads=1)
            t_compile = t_opt + time.perf_counter() - t0
            ok = bool(np.array_equal(net(x[:1024]), check))
            failed |= not ok
            one = measure_throughput(net, x, repeats=3)
            one_cpu = measure_throughput(net, x, repeats=3, clock=time.thread_time)
            many = measure_throughput(build(small, target, threads=cores), x, repeats=3) \
                if cores > 1 and target != "emitted C" else one
            row = {"net": name, "gates": circuit.num_gates, "gates_after_O2": small.num_gates, "target": target,
                   "compile_seconds": t_compile, "optimize_seconds": t_opt, "samples_per_second_1_thread": one,
                   "samples_per_cpu_second_1_thread": one_cpu,
                   f"samples_per_second_{cores}_threads": many, "matches_reference": ok}
            rows.append(row)
            print(f"{name:6s} {circuit.num_gates:9d} {small.num_gates:9d} {target:11s} {t_compile:9.2f} {one:12,.0f} "
                  f"{one_cpu:12,.0f} {many:12,.0f}  {'ok' if ok else 'MISMATCH'}", flush=True)

    baseline = None
    if os.environ.get("LGC_BENCH_BASELINE", "1") != "0" and "48K" in nets:
        circuit = mnist_shaped(NETS["48K"])
        print("difflogic-style baseline (48K gates, no passes, one C function, gcc -O1): compiling ...", flush=True)
        base = DifflogicBaseline(circuit, opt="-O1")
        ok = bool(np.array_equal(base(x[:1024]), simulate(circuit, x[:1024])))
        failed |= not ok
        sps = measure_throughput(base, x, repeats=3)
        sps_cpu = measure_throughput(base, x, repeats=3, clock=time.thread_time)
        baseline = {"gates": circuit.num_gates, "compile_seconds": base.compile_seconds,
                    "samples_per_second_1_thread": sps, "samples_per_cpu_second_1_thread": sps_cpu,
                    "matches_reference": ok}
        best = max((r for r in rows if r["net"] == "48K"), key=lambda r: r["samples_per_second_1_thread"])
        baseline["best_target"] = best["target"]
        baseline["ratio_best_to_baseline_1_thread"] = best["samples_per_second_1_thread"] / sps
        baseline["ratio_best_to_baseline_1_thread_cpu_time"] = best["samples_per_cpu_second_1_thread"] / sps_cpu
        baseline["compile_ratio"] = base.compile_seconds / best["compile_seconds"]
        print(f"baseline: compile {base.compile_seconds:.1f} s, {sps:,.0f} samples/s (1 thread), "
              f"{sps_cpu:,.0f} per CPU second, {'ok' if ok else 'MISMATCH'}")
        print(f"headline (48K, 1 thread): {best['target']} {best['samples_per_second_1_thread']:,.0f} samples/s = "
              f"{baseline['ratio_best_to_baseline_1_thread']:.1f}x the baseline "
              f"({baseline['ratio_best_to_baseline_1_thread_cpu_time']:.1f}x by CPU time); compile "
              f"{best['compile_seconds']:.2f} s vs {base.compile_seconds:.1f} s")

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": info, "batch": BATCH, "kernel_build_seconds": kernel_build,
                               "results": rows, "baseline": baseline,
                               "command": "python benchmarks/throughput.py"}, indent=2))
    print(f"wrote {OUT}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
