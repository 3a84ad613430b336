"""What reading any nonzero bool byte as True costs: canonical-bool throughput before and after.

Issue 16: bool arrays whose True bytes are not 0x01 (``(u8 * 255).view(bool)``) got wrong scores
from ``c``, ``cpu-avx2`` and ``llvm``, whose packing shifted the bytes without normalising them.
The fix normalises each byte where the rows are packed (a ``vpminub`` per vector load, a SWAR
step per 8 bytes in portable C, ``icmp ne`` in the LLVM IR). This script runs the code before
the fix (lgc's tree at commit ``BEFORE``, extracted with ``git archive`` and imported as a
second package, ``lgc_before``) and the current tree side by side in one process, on canonical
bool input (C-contiguous ``bool [65536, 784]``), for every executable CPU target here, on two
random MNIST-shaped nets: the 48K-gate one (784 -> 6 x 8000 -> 10) and a 1K-gate one (784 ->
2 x 500 -> 10) where packing the 784-byte rows is most of the work, the worst case for the fix.
Single thread (threads=1, CPU time of the calling thread, fairer on a shared host), each side
measured in alternating rounds, best of each. Every net is checked against lgc.ir.simulate;
the current one on non-canonical input as well. Runs with no arguments (needs git and the
repository); writes benchmarks/out/bool_packing.json.
Environment: LGC_BENCH_ROUNDS (default 3) alternating rounds per side.
"""
from __future__ import annotations

import importlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

BEFORE = "ab4c08d"  # the last commit before the fix
REPO = pathlib.Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "out" / "bool_packing.json"
NETS = {"48K": [8000] * 6, "1K": [500] * 2}
BATCH = 65536
TARGETS = ("numpy", "c", "cpu-avx2", "cpu-avx512", "llvm")


def import_before(tmp: pathlib.Path):
    """lgc's ``ir`` and ``backends`` at commit BEFORE, as the package ``lgc_before`` (they import
    only relatively, so the copy is self-contained)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE, "lgc"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    (tmp / "lgc").rename(tmp / "lgc_before")
    sys.path.insert(0, str(tmp))
    return importlib.import_module("lgc_before.backends"), importlib.import_module("lgc_before.ir")


def main() -> int:
    os.environ.setdefault("LGC_CACHE_DIR", tempfile.mkdtemp(prefix="lgc-bench-cache-"))
    sys.path.insert(0, str(REPO))
    import lgc
    from lgc.backends.bench import measure_throughput
    from lgc.ir import random_layered_circuit, simulate
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from throughput import machine

    old_backends, old_ir = import_before(pathlib.Path(tempfile.mkdtemp(prefix="lgc-before-")))
    rounds = int(os.environ.get("LGC_BENCH_ROUNDS", "3"))
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, flags {' '.join(info['flags'])}, load {info['load_average']}")
    print(f"before = {BEFORE}, after = working tree; canonical bool [{BATCH}, 784], threads=1, "
          f"{rounds} alternating rounds, best of each (samples/s of this thread's CPU time)")
    targets = [t for t in TARGETS if t in lgc.targets()]
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 784)) < 0.5
    x_bad = np.where(x, rng.integers(1, 256, size=x.shape), 0).astype(np.uint8).view(bool)
    print(f"{'net':4s} {'gates O2':>9s} {'target':11s} {'before /s':>12s} {'after /s':>12s} {'after/before':>12s}  check")
    rows = []
    for name, widths in NETS.items():
        c = lgc.optimize(random_layered_circuit(784, widths, num_classes=10, tau=10.0, seed=0), level=2)
        c_old = old_ir.Circuit(c.num_inputs, c.op, c.a, c.b, c.outputs, head=old_ir.GroupSumHead(c.head.k, c.head.tau))
        want = simulate(c, x[:1024])
        for t in targets:
            new = lgc.backends.build(c, t, threads=1)
            old = old_backends.build(c_old, t, threads=1)
            ok = np.array_equal(new(x[:1024]), want) and np.array_equal(old(x[:1024]), want) \
                and np.array_equal(new(x_bad[:1024]), want)
            best = {"before": 0.0, "after": 0.0}
            for _ in range(rounds):
                for side, net in (("before", old), ("after", new)):
                    best[side] = max(best[side], measure_throughput(net, x, repeats=1, min_seconds=0.3,
                                                                    clock=time.thread_time))
            ratio = best["after"] / best["before"]
            rows.append({"net": name, "gates": int(c.num_gates), "target": t, "before_per_s": best["before"],
                         "after_per_s": best["after"], "ratio": ratio, "check": bool(ok)})
            print(f"{name:4s} {c.num_gates:>9,} {t:11s} {best['before']:>12,.0f} {best['after']:>12,.0f} "
                  f"{ratio:>12.3f}  {'ok' if ok else 'MISMATCH'}")
    info["load_average_end"] = os.getloadavg()
    print(f"load at the end: {info['load_average_end']}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": info, "before": BEFORE, "batch": BATCH, "rounds": rounds,
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}, indent=2))
    print(f"wrote {OUT}")
    return 0 if all(r["check"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
