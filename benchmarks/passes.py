"""Benchmark the optimisation passes: gates before/after and seconds per pass, peak memory.

Cases: random difflogic-shaped circuits (MNIST-shaped 784 -> 6 x 8000 -> 10 classes, and
3072 -> 5 x 1,024,000 = 5.12M gates -> 10 classes) and, when ``lgc.frontend`` works, a lowered
residual-initialised MNIST-shaped model (untrained: residual init makes most gates pass-throughs).
Each (case, level) runs in a fresh subprocess so ``ru_maxrss`` is that run's peak memory.
Run with no arguments: ``python benchmarks/passes.py`` (or name cases to run only those).
Writes ``benchmarks/out/passes.json``.
"""
from __future__ import annotations

import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
BUDGET_SECONDS, BUDGET_BYTES = 60.0, 8 << 30

CASES = {
    "mnist-6x8000": dict(num_inputs=784, widths=[8000] * 6, num_classes=10),
    "random-5x1024000": dict(num_inputs=3072, widths=[1_024_000] * 5, num_classes=10),
    "lowered-residual-6x8000": dict(model=True),
    # trained by `lgc train --dataset mnist20x20 -k 8000 -l 6 -ni 3000 --out benchmarks/out/mnist20x20-6x8000`
    "trained-mnist20x20-6x8000": dict(checkpoint="mnist20x20-6x8000"),
}
LEVELS = (1, 2, 3)
SAT_MAX_GATES = 100_000  # SAT-prove the result equal to the input for circuits up to this size


def machine() -> dict:
    flags, model = set(), platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "flags": sorted(f for f in flags if f in {"avx2", "avx512f", "avx512bw", "bmi2", "popcnt"})}


def _circuit(case: str):
    spec = CASES[case]
    if spec.get("checkpoint"):
        from lgc.frontend import load_checkpoint, lower
        return lower(load_checkpoint(HERE / "out" / spec["checkpoint"] / "best.pt").eval())
    if spec.get("model"):
        import torch
        from lgc.frontend import GroupSum, LogicLayer, lower
        torch.manual_seed(0)
        layers = [LogicLayer(784 if i == 0 else 8000, 8000, residual_init=True, implementation="python")
                  for i in range(6)]
        model = torch.nn.Sequential(torch.nn.Flatten(), *layers, GroupSum(10, tau=10)).eval()
        return lower(model)
    from lgc.ir import random_layered_circuit
    return random_layered_circuit(spec["num_inputs"], spec["widths"], num_classes=spec["num_classes"], seed=0)


def run_one(case: str, level: int) -> dict:
    """One case at one level, in this process: returns the figures as a dict."""
    from lgc.passes import equivalent, optimize, sat_solver_available
    from lgc.passes._rewrite import live_gates

    t0 = time.perf_counter()
    circuit = _circuit(case)
    build_s = time.perf_counter() - t0
    live = live_gates(circuit)
    dead_per_layer = []
    if circuit.layers is not None:
        for lo, hi in zip(circuit.layers[:-1], circuit.layers[1:]):
            dead_per_layer.append(round(1 - float(live[lo:hi].mean()), 4) if hi > lo else 0.0)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    out, report = optimize(circuit, level=level, report=True)
    total_s = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)  # less load-sensitive
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    per_pass: dict[str, dict] = {}
    for r in report.runs:
        p = per_pass.setdefault(r.name, {"removed": 0, "seconds": 0.0, "runs": 0})
        p["removed"] += r.gates_before - r.gates_after
        p["seconds"] += r.seconds
        p["runs"] += 1
    t0 = time.perf_counter()
    eq = equivalent(circuit, out, method="simulate", vectors=4096)
    eq_s = time.perf_counter() - t0
    sat = sat_s = None
    if circuit.num_gates <= SAT_MAX_GATES and sat_solver_available() is None:
        t0 = time.perf_counter()
        sat = bool(equivalent(circuit, out, method="sat"))  # a proof, independent of the passes
        sat_s = time.perf_counter() - t0
    return {
        "case": case, "level": level, "inputs": circuit.num_inputs, "gates_before": circuit.num_gates,
        "gates_after": out.num_gates, "depth_before": report.depth_before, "depth_after": report.depth_after,
        "dead_before": int((~live).sum()), "dead_fraction_per_layer": dead_per_layer,
        "rounds": report.rounds, "converged": report.converged, "seconds_passes": report.seconds,
        "seconds_total": total_s, "cpu_seconds": cpu_s, "load_average": os.getloadavg()[0], "seconds_build": build_s, "per_pass": per_pass,
        "peak_rss_bytes": rss_peak, "rss_before_passes_bytes": rss_before,
        # no difference on 4096 random rows (not a proof: equal is then None, undecided)
        "equivalent_simulate_4096": eq.equal is not False, "seconds_equivalent": eq_s, "report": str(report),
        "equivalent_sat": sat, "seconds_sat": sat_s,
    }


def main(cases: list[str]) -> None:
    results, skipped = [], {}
    for case in cases:
        for level in LEVELS:
            proc = subprocess.run([sys.executable, __file__, "--one", case, str(level)], capture_output=True, text=True)
            if proc.returncode:
                skipped[case] = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc {proc.returncode}"
                print(f"{case}: skipped ({skipped[case]})")
                break
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, flags {' '.join(info['flags'])}, Python {info['python']}, "
          f"load average {os.getloadavg()[0]:.1f} (shared machine: 'seconds' is wall time, 'cpu s' user+sys)")
    head = f"{'case':<24} {'lvl':>3} {'gates before':>13} {'after':>11} {'after/before':>12} {'depth':>7} " \
           f"{'rounds':>6} {'seconds':>8} {'cpu s':>7} {'s/60s':>6} {'peak GB':>8} {'GB/8GB':>6} {'sim=':>5} {'SAT proof':>9}"
    print(head)
    for r in results:
        proof = "-" if r["equivalent_sat"] is None else f"{r['equivalent_sat']} {r['seconds_sat']:.1f}s"
        print(f"{r['case']:<24} {r['level']:>3} {r['gates_before']:>13,} {r['gates_after']:>11,} "
              f"{r['gates_after'] / r['gates_before']:>12.3f} {r['depth_before']:>3}->{r['depth_after']:<3} "
              f"{r['rounds']:>6} {r['seconds_total']:>8.2f} {r['cpu_seconds']:>7.2f} {r['seconds_total'] / BUDGET_SECONDS:>6.3f} "
              f"{r['peak_rss_bytes'] / 2**30:>8.2f} {r['peak_rss_bytes'] / BUDGET_BYTES:>6.3f} "
              f"{str(r['equivalent_simulate_4096']):>5} "
              f"{proof:>9}")
    print("\nper pass (O2), summed over rounds: gates removed / seconds")
    for r in results:
        if r["level"] == 2:
            print(f"  {r['case']}: dead before = {r['dead_before']:,} "
                  f"(per layer {', '.join(f'{x:.0%}' for x in r['dead_fraction_per_layer'])})")
            for name, p in r["per_pass"].items():
                print(f"    {name:<24} {p['removed']:>11,}  {p['seconds']:7.3f} s  ({p['runs']} runs)")
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    path = out / "passes.json"
    if set(cases) != set(CASES) and path.exists():  # a partial run updates its cases only
        kept = [r for r in json.loads(path.read_text()).get("results", []) if r["case"] not in cases]
        results = kept + results
    path.write_text(json.dumps({"machine": info, "results": results, "skipped": skipped}, indent=1))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(run_one(sys.argv[2], int(sys.argv[3]))))
    else:
        unknown = [c for c in sys.argv[1:] if c not in CASES]
        if unknown:
            sys.exit(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
        main(sys.argv[1:] or list(CASES))
