"""Every way lgc runs a network, in one table: in-process targets and exported artifacts.

Runs with no arguments. For the random MNIST-shaped 48K-gate net (784 -> 6 x 8000 -> 10), a trained
net when one is on disk (``LGC_BENCH_TRAINED=path`` to a lowered ``.lgc`` or ``.pt``; default
``benchmarks/out/mnist.lgc``, which ``benchmarks/hardware.py`` trains) and the ~1M-gate random one
(6 x 166,670), optimised at O2, each row in ``ROWS`` is built and timed on one thread:
samples/s for C-contiguous bool input [N, 784] and for packed words (packing and readout included),
build time (the circuit's build; the kernel's one-off build per process is printed above the
table), gates, and the ratio to the best C kernel target (``cpu-avx512``/``cpu-avx2``) of the same
run. Beside the in-process targets: the emitted C (``lgc.export(c, "net.c")`` built by gcc -O2 into a
shared library) and the difflogic-style baseline (the unoptimised circuit as one straight-line C
function, gcc -O1: how difflogic compiles; nets up to 100K gates, since gcc does not finish beyond). Every row is checked against lgc.ir.simulate on 1024 samples. Then the cross-target rows:
the 48K net exported as an object for aarch64 and riscv64 (cross gcc + qemu-user) and wasm32
(wasm-ld + node), run on 1000 samples and compared bit for bit; and thumbv7em (Cortex-M4): code
and constant-data bytes of the object. Writes benchmarks/out/targets.json.

Adding a row is one entry in ``ROWS``: a name and a function (circuit after O2, circuit before
passes) -> something callable on bool rows (and on PackedBits, unless ``packed=False``).
Environment: LGC_BENCH_NETS=48K,1M picks networks; LGC_BENCH_CROSS=0 skips the cross rows.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
OUT = HERE / "out" / "targets.json"
NETS = {"48K": (8000, 65536), "1M": (166670, 8192)}  # width, batch
C_KERNELS = ("cpu-avx512", "cpu-avx2")


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the table. ``make(optimised, original)`` builds the runnable thing (timed as
    the build); ``packed``: whether it takes lgc.ir.PackedBits; ``needs``: None when it can run
    here, else why not (checked before building)."""

    name: str
    make: Callable[[Any, Any], Callable[[Any], np.ndarray]]
    packed: bool = True
    needs: Callable[[], str | None] = lambda: None
    max_gates: int | None = None  # skip nets whose unoptimised circuit is larger


def _target(name: str) -> Row:
    def make(c, _original):
        from lgc.backends import build
        return build(c, name, threads=1)

    def needs() -> str | None:
        from lgc.backends import unavailable_reasons
        return unavailable_reasons().get(name, "unknown target")

    return Row(name, make, needs=needs)


def _gcc() -> str | None:
    return None if shutil.which("gcc") else "no gcc"


def _emitted_c(c, _original):
    from lgc.backends.bench import EmittedC
    return EmittedC(c)


def _difflogic_style(_c, original):
    from lgc.backends.bench import DifflogicBaseline
    return DifflogicBaseline(original)


#: the rows, in table order (other artifacts add theirs here)
ROWS: list[Row] = [_target(t) for t in ("cpu-avx512", "cpu-avx2", "llvm", "c")] + [
    Row("emitted C -O2", _emitted_c, needs=_gcc),
    Row("difflogic-style", _difflogic_style, packed=False, needs=_gcc, max_gates=100_000),
]


def machine() -> dict:
    from lgc.backends._common import cpu_flags, default_threads
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    wanted = ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512vbmi", "gfni")
    return {"cpu": model, "cores": default_threads(), "flags": [f for f in wanted if f in cpu_flags()],
            "load_average": os.getloadavg()}


def samples_per_second(net: Callable[[Any], Any], x: Any, n: int, *, repeats: int = 3, min_seconds: float = 0.3) -> float:
    """Best of ``repeats`` timings (this thread's CPU time: fairer on a shared host for one
    thread), each calling ``net(x)`` until ``min_seconds`` have passed."""
    net(x)
    best = 0.0
    for _ in range(repeats):
        done, t0 = 0, time.thread_time()
        while True:
            net(x)
            done += n
            dt = time.thread_time() - t0
            if dt >= min_seconds:
                break
        best = max(best, done / dt)
    return best


def kernel_builds() -> dict[str, float]:
    """Seconds to build each native kernel once (cold cache): gcc for the C targets, the JIT for llvm."""
    from lgc.backends import cpu_c, llvm, unavailable_reasons
    out = {}
    for name, why in unavailable_reasons().items():
        if why is not None or name not in ("cpu-avx512", "cpu-avx2", "c", "llvm"):
            continue
        if name == "llvm":  # a fresh JIT into an empty cache (the availability probe filled the other)
            os.environ["LGC_CACHE_DIR"] = tempfile.mkdtemp(prefix="lgc-bench-jit-")
        t0 = time.perf_counter()
        llvm._engine.__wrapped__() if name == "llvm" else cpu_c.library(name)
        out[name] = time.perf_counter() - t0
    return out


def run_rows(name: str, original, optimised, x: np.ndarray) -> list[dict]:
    from lgc.ir import pack_bits, simulate
    packed = pack_bits(x)
    check = simulate(optimised, x[:1024])
    rows = []
    for row in ROWS:
        why = row.needs()
        if why is None and row.max_gates is not None and original.num_gates > row.max_gates:
            why = f"{original.num_gates:,} gates > {row.max_gates:,}"
        if why is not None:
            print(f"{name:4s} {row.name:14s} skipped: {why}", flush=True)
            continue
        t0 = time.perf_counter()
        net = row.make(optimised, original)
        build_s = time.perf_counter() - t0
        ok = bool(np.array_equal(net(x[:1024]), check))
        sps = samples_per_second(net, x, len(x))
        sps_packed = samples_per_second(net, packed, len(x)) if row.packed else None
        if row.packed:
            ok &= bool(np.array_equal(net(pack_bits(x[:1024])), check))
        rows.append({"net": name, "row": row.name, "gates": original.num_gates, "gates_after_O2": optimised.num_gates,
                     "build_seconds": build_s, "bool_samples_per_second": sps,
                     "packed_samples_per_second": sps_packed, "matches_reference": ok})
    best = {k: max((r[k] or 0) for r in rows if r["row"] in C_KERNELS) if any(r["row"] in C_KERNELS for r in rows)
            else None for k in ("bool_samples_per_second", "packed_samples_per_second")}
    for r in rows:
        for k in ("bool", "packed"):
            ref, v = best[f"{k}_samples_per_second"], r[f"{k}_samples_per_second"]
            r[f"{k}_ratio_to_best_c_kernel"] = v / ref if ref and v else None
        fmt = lambda v: "-" if v is None else f"{v:,.0f}"  # noqa: E731
        ratio = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
        print(f"{name:4s} {r['row']:14s} {r['gates']:>9,d} {r['gates_after_O2']:>9,d} {r['build_seconds']:8.2f} "
              f"{fmt(r['bool_samples_per_second']):>12s} {ratio(r['bool_ratio_to_best_c_kernel']):>6s} "
              f"{fmt(r['packed_samples_per_second']):>12s} {ratio(r['packed_ratio_to_best_c_kernel']):>6s}  "
              f"{'ok' if r['matches_reference'] else 'MISMATCH'}", flush=True)
    return rows


#: cross targets: name -> (triple, cpu, features, linker, runner)
CROSS = {
    "aarch64 (qemu)": ("aarch64-linux-gnu", "", "", "aarch64-linux-gnu-gcc", ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]),
    "riscv64 (qemu)": ("riscv64-linux-gnu", "", "", "riscv64-linux-gnu-gcc", ["qemu-riscv64", "-L", "/usr/riscv64-linux-gnu"]),
    "wasm32+simd128 (node)": ("wasm32-unknown-unknown", "", "+simd128", "wasm-ld", ["node"]),
    "thumbv7em Cortex-M4": ("thumbv7em-none-eabi", "cortex-m4", "", None, None),
}


def workspace(header: pathlib.Path) -> int:
    return int(re.search(r"#define \w+_WORKSPACE_BYTES (\d+)", header.read_text()).group(1))


def cross_rows(circuit, x: np.ndarray) -> list[dict]:
    """Export ``circuit`` for each cross target; run it (1000 samples, bool and packed) where a
    runner exists, else report the object's code and constant-data bytes."""
    import lgc
    from lgc.backends._llvm_export import section_sizes
    from lgc.ir import pack_bits, simulate
    drivers = HERE.parent / "tests" / "drivers"
    want = simulate(circuit, x)
    out = []
    with tempfile.TemporaryDirectory(prefix="lgc-cross-") as tmp:
        for name, (triple, cpu, features, linker, runner) in CROSS.items():
            d = pathlib.Path(tmp) / name.split()[0]
            d.mkdir()
            t0 = time.perf_counter()
            lgc.export(circuit, d / "net.o", triple=triple, cpu=cpu, features=features)
            export_s = time.perf_counter() - t0
            obj = (d / "net.o").read_bytes()
            row = {"row": name, "triple": triple, "cpu": cpu, "features": features, "export_seconds": export_s,
                   "object_bytes": len(obj)}
            if runner is None:
                sizes = section_sizes(obj)
                row.update(code_bytes=sizes["code"], constant_data_bytes=sizes["data"], writable_bytes=sizes["writable"])
                ws = workspace(d / "net.h")
                row["workspace_bytes"] = ws
                print(f"{name:24s} export {export_s:5.2f} s  code {sizes['code']:,} B, constant data {sizes['data']:,} B, "
                      f"workspace (RAM) {ws:,} B", flush=True)
                out.append(row)
                continue
            missing = [t for t in (linker, runner[0]) if shutil.which(t) is None]
            if missing:
                print(f"{name:24s} skipped: {', '.join(missing)} missing", flush=True)
                continue
            if linker == "wasm-ld":
                prog = d / "net.wasm"
                subprocess.run([linker, "--no-entry", "--export-all", "--export=__heap_base", str(d / "net.o"), "-o", str(prog)],
                               check=True)
                ws = workspace(d / "net.h")
                cmd = [*runner, str(drivers / "net_driver.mjs"), str(prog), f"1 {circuit.num_inputs} {circuit.head.k} 0 {ws}"]
            else:
                subprocess.run([linker, "-std=c99", "-O1", "-I", str(d), str(drivers / "net_driver.c"), str(d / "net.o"),
                                "-o", str(d / "driver")], check=True)
                cmd = [*runner, str(d / "driver")]
            n = np.uint32(len(x)).tobytes()
            blob = b"b" + n + x.astype(np.uint8).tobytes() + b"p" + n + np.ascontiguousarray(pack_bits(x).words).tobytes()
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, input=blob, capture_output=True)
            run_s = time.perf_counter() - t0
            got = np.frombuffer(proc.stdout, dtype="<i4")
            ok = proc.returncode == 0 and got.size == 2 * want.size and \
                np.array_equal(got[:want.size].reshape(want.shape), want) and np.array_equal(got[want.size:].reshape(want.shape), want)
            row.update(matches_reference=bool(ok), run_seconds_including_start=run_s, samples=len(x))
            print(f"{name:24s} export {export_s:5.2f} s  {len(x)} samples bool + packed: "
                  f"{'bit-exact' if ok else 'MISMATCH'} ({run_s:.2f} s including start-up)", flush=True)
            out.append(row)
    return out


def trained_net():
    """The unoptimised circuit of a trained net (``LGC_BENCH_TRAINED``, else benchmarks/out/mnist.lgc), or None.
    Its rows run on random input bits: bit-sliced code takes the same time whatever the bits."""
    import lgc
    path = pathlib.Path(os.environ.get("LGC_BENCH_TRAINED", HERE / "out" / "mnist.lgc"))
    if not path.exists():
        return None
    loaded = lgc.load(path)
    return loaded if isinstance(loaded, lgc.ir.Circuit) else loaded.circuit


def main() -> int:
    os.environ["LGC_CACHE_DIR"] = tempfile.mkdtemp(prefix="lgc-bench-cache-")
    import lgc
    from lgc.backends.bench import mnist_shaped
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, flags {' '.join(info['flags'])}, load {info['load_average']}")
    builds = kernel_builds()
    print("kernel build, once per process (cold cache): " + ", ".join(f"{t} {s:.2f} s" for t, s in builds.items()))
    print(f"{'net':4s} {'row':14s} {'gates':>9s} {'after O2':>9s} {'build s':>8s} {'bool/s':>12s} {'ratio':>6s} "
          f"{'packed/s':>12s} {'ratio':>6s}  check   (1 thread; ratio: to the best C kernel target)")
    rng = np.random.default_rng(0)
    rows, cross, failed = [], [], False
    nets = [n.strip() for n in os.environ.get("LGC_BENCH_NETS", "48K,trained,1M").split(",") if n.strip()]
    for name in nets:
        if name == "trained":
            original = trained_net()
            if original is None:
                print("trained: skipped (no trained net: set LGC_BENCH_TRAINED or run benchmarks/hardware.py)")
                continue
            batch = 65536
        else:
            width, batch = NETS[name]
            original = mnist_shaped(width)
        optimised = lgc.optimize(original, level=2)
        x = rng.random((batch, original.num_inputs)) < 0.5
        rows += run_rows(name, original, optimised, x)
        if name == "48K" and os.environ.get("LGC_BENCH_CROSS", "1") != "0":
            cross = cross_rows(optimised, x[:1000])
    failed = any(not r["matches_reference"] for r in rows) or any(r.get("matches_reference") is False for r in cross)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": info, "kernel_build_seconds": builds, "results": rows, "cross": cross,
                               "command": "python benchmarks/targets.py"}, indent=2))
    print(f"wrote {OUT}; load now {os.getloadavg()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
