"""The emitted C (``lgc.export(circuit, "net.c")``): build time and speed next to the in-process
targets and the difflogic-style baseline, and where straight-line gates beat the tables.

Runs with no arguments. Part 1, for random MNIST-shaped networks (784 -> 6 x 8000 -> 10 = 48K
gates; 6 x 166,670 = 1M) after O2: emitting the C and building it with ``gcc -std=c99 -O2
-shared`` (the portable kernel; also -O3, and the same file with ``-std=gnu11 -mavx2 -DVW=4``), object
code and data sizes, and samples/s on bool [N, 784] and packed input (one thread, thread CPU
time, best of 3) for the emitted C and the in-process ``c``, ``cpu-avx2`` and ``llvm`` targets,
side by side; then the difflogic-style baseline (one straight-line C function, gcc -O1) for the
48K net. Part 2, for small-to-medium random circuits (64 inputs, 4 layers, 4 classes): the
emitted C with gate tables vs straight-line gates (``straight_line=True``), build time and
samples/s, to place the crossover. Every result is checked against lgc.ir.simulate.
Environment: LGC_BENCH_NETS=48K,1M picks networks; LGC_BENCH_BASELINE=0 skips the baseline.
Writes benchmarks/out/emitted_c.json.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

OUT = pathlib.Path(__file__).resolve().parent / "out" / "emitted_c.json"
NETS = {"48K": (8000, 131072), "1M": (166670, 16384)}   # width, batch
SIZES = (8, 32, 128, 512, 2048, 8000)                   # part 2: layer widths


def _sizes(cc: str, circuit, flags: tuple[str, ...]) -> dict:
    """Bytes of code (.text) and constant data (.rodata*) of the emitted C's object file (``size -A``)."""
    from lgc.backends import c_source
    with tempfile.TemporaryDirectory() as d:
        c = pathlib.Path(d) / "net.c"
        c.write_text(c_source.emit(circuit, "net").c)
        subprocess.run([cc, "-std=c99", *flags, "-c", str(c), "-o", f"{d}/net.o"], check=True)
        lines = subprocess.run(["size", "-A", f"{d}/net.o"], capture_output=True, text=True).stdout.splitlines()
    sections = {ln.split()[0]: int(ln.split()[1]) for ln in lines if ln.startswith(".") and len(ln.split()) >= 2}
    return {"code": sum(v for k, v in sections.items() if k.startswith(".text")),
            "constant_data": sum(v for k, v in sections.items() if k.startswith(".rodata")),
            "writable_data": sum(v for k, v in sections.items() if k.startswith((".data", ".bss")))}


def main() -> int:
    os.environ["LGC_CACHE_DIR"] = tempfile.mkdtemp(prefix="lgc-bench-cache-")
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    import lgc
    from lgc.backends.bench import DifflogicBaseline, EmittedC, measure_throughput, mnist_shaped
    from lgc.backends import cpu_c
    from lgc.backends.cpu_c import compiler
    from lgc.ir import pack_bits, random_layered_circuit, simulate
    from throughput import machine

    info = machine()
    cc = compiler()
    print(f"machine: {info['cpu']}, {info['cores']} cores, flags {' '.join(info['flags'])}, load {info['load_average']}")
    failed = False

    def speed(net, x, packed) -> tuple[float, float]:
        kw = dict(repeats=3, min_seconds=0.3, clock=time.thread_time)
        return measure_throughput(net, x, **kw), measure_throughput(lambda _x: net(packed), x, **kw)

    kernel_build = {}
    for t in ("c", "cpu-avx2"):   # once per target, cached afterwards: not a per-circuit cost
        if t in lgc.targets():
            t0 = time.perf_counter()
            cpu_c.library(t)
            kernel_build[t] = time.perf_counter() - t0
    print("in-process kernels, built once per target (cold cache): "
          + ", ".join(f"{t} {s:.2f} s" for t, s in kernel_build.items()) + "; build s below is per circuit")
    rows = []
    print(f"{'net':5s} {'gates':>8s} {'build':26s} {'build s':>8s} {'bool /s':>12s} {'packed /s':>12s}  check")
    nets = [n.strip() for n in os.environ.get("LGC_BENCH_NETS", ",".join(NETS)).split(",") if n.strip()]
    for name in nets:
        width, batch = NETS[name]
        circuit = lgc.optimize(mnist_shaped(width), level=2)
        x = np.random.default_rng(0).random((batch, 784)) < 0.5
        packed = pack_bits(x)
        check = simulate(circuit, x[:1024])
        builds = [("emitted C, gcc -O2", lambda: EmittedC(circuit, flags=("-O2",))),
                  ("emitted C, gcc -O3", lambda: EmittedC(circuit, flags=("-O3",))),
                  ("emitted C, -O2 -mavx2 VW=4", lambda: EmittedC(circuit, flags=("-O2", "-std=gnu11", "-mavx2", "-DVW=4"))),
                  ("c (in process)", lambda: lgc.compile(circuit, target="c", opt_level=0, threads=1)),
                  ("cpu-avx2 (in process)", lambda: lgc.compile(circuit, target="cpu-avx2", opt_level=0, threads=1)),
                  ("llvm (in process)", lambda: lgc.compile(circuit, target="llvm", opt_level=0, threads=1))]
        first = len(rows)
        for label, make in builds:
            if "avx2" in label and "avx2" not in info["flags"]:
                continue
            t0 = time.perf_counter()
            net = make()
            t_build = time.perf_counter() - t0
            ok = bool(np.array_equal(net(x[:1024]), check)) and bool(np.array_equal(net(pack_bits(x[:1024])), check))
            failed |= not ok
            s_bool, s_packed = speed(net, x, packed)
            row = {"net": name, "gates_after_O2": circuit.num_gates, "build": label, "build_seconds": t_build,
                   "samples_per_cpu_second_bool": s_bool, "samples_per_cpu_second_packed": s_packed, "matches_reference": ok}
            if label.startswith("emitted"):
                row["source_bytes"] = net.source_bytes
            rows.append(row)
            print(f"{name:5s} {circuit.num_gates:8d} {label:26s} {t_build:8.2f} {s_bool:12,.0f} {s_packed:12,.0f}  "
                  f"{'ok' if ok else 'MISMATCH'}", flush=True)
        rows[first]["object_sizes_O2"] = _sizes(cc, circuit, ("-O2",))
        print(f"      object code and data (gcc -O2, bytes): {rows[first]['object_sizes_O2']}")

    baseline = None
    if os.environ.get("LGC_BENCH_BASELINE", "1") != "0" and "48K" in nets:
        circuit = mnist_shaped(NETS["48K"][0])
        x = np.random.default_rng(0).random((NETS["48K"][1], 784)) < 0.5
        print("difflogic-style baseline (48K gates, no passes, one C function, gcc -O1): compiling ...", flush=True)
        base = DifflogicBaseline(circuit, opt="-O1")
        ok = bool(np.array_equal(base(x[:1024]), simulate(circuit, x[:1024])))
        failed |= not ok
        sps = measure_throughput(base, x, repeats=3, clock=time.thread_time)
        baseline = {"gates": circuit.num_gates, "compile_seconds": base.compile_seconds,
                    "samples_per_cpu_second_bool": sps, "matches_reference": ok}
        print(f"baseline: compile {base.compile_seconds:.1f} s, {sps:,.0f} samples/s (bool, per CPU second), "
              f"{'ok' if ok else 'MISMATCH'}")

    print("\nstraight-line gates vs gate tables (emitted C, gcc -O2, 64 inputs, 4 layers, 4 classes; one thread):")
    print(f"{'width':>6s} {'gates':>6s} {'build s tables':>14s} {'straight':>9s} {'bool tables':>12s} {'straight':>12s} "
          f"{'ratio':>6s} {'packed ratio':>12s}")
    crossover = []
    x = np.random.default_rng(1).random((65536, 64)) < 0.5
    packed = pack_bits(x)
    for width in SIZES:
        circuit = lgc.optimize(random_layered_circuit(64, [width] * 4, num_classes=4, seed=1), level=2)
        tables = EmittedC(circuit, flags=("-O2",), straight_line=False)
        straight = EmittedC(circuit, flags=("-O2",), straight_line=True)
        check = simulate(circuit, x[:1024])
        ok = all(np.array_equal(n(x[:1024]), check) for n in (tables, straight))
        failed |= not ok
        (tb, tp), (sb, sp) = speed(tables, x, packed), speed(straight, x, packed)
        crossover.append({"width": width, "gates_after_O2": circuit.num_gates, "build_seconds_tables": tables.compile_seconds,
                          "build_seconds_straight": straight.compile_seconds, "bool_tables": tb, "bool_straight": sb,
                          "packed_tables": tp, "packed_straight": sp, "matches_reference": ok})
        print(f"{width:6d} {circuit.num_gates:6d} {tables.compile_seconds:14.2f} {straight.compile_seconds:9.2f} "
              f"{tb:12,.0f} {sb:12,.0f} {sb / tb:6.2f} {sp / tp:12.2f}  {'ok' if ok else 'MISMATCH'}", flush=True)

    info["load_average_end"] = os.getloadavg()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": info, "compiler": cc, "kernel_build_seconds": kernel_build, "results": rows, "baseline": baseline,
                               "straight_line_vs_tables": crossover, "command": "python benchmarks/emitted_c.py"},
                              indent=2))
    print(f"load at the end: {info['load_average_end']}\nwrote {OUT}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
