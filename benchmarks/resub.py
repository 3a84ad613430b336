"""What don't-care resubstitution (``lgc.passes.resub``, issue 19 item 3) adds to O3 on the trained nets.

For each net: lgc O3 without ``resub`` (the pipeline before it), then ``resub`` alone on that result,
then O3 as it is now (``resub`` included, run to the pipeline's fixed point), and the same for the
area-only pipeline; gates, depth and seconds of each, the seconds ``resub`` took inside O3 (all rounds),
and a SAT proof (``equivalent(method="sat")``, CaDiCaL miter) that O3's result equals the unoptimised
circuit. Nets: the digits 4 x 1000 net trained by ``benchmarks/hardware.py`` (~1 min), the MNIST 20x20
6 x 8000 and conv nets under ``benchmarks/out/`` (train commands in RESULTS.md, Hardware; a missing one
is skipped with a note), and the random 784 -> 6 x 8000 -> 10 net (seed 0).

Run: ``python benchmarks/resub.py [cases]`` (no arguments: all); prints a table, writes
``benchmarks/out/resub.json``.
"""
from __future__ import annotations

import json
import sys
import time

from hardware import OUT_DIR, _from_checkpoint, _trained
from passes import machine

from lgc.ir import depth, random_layered_circuit
from lgc.passes import PIPELINES, equivalent, resub, run_pipeline

CASES = ("trained-digits-4x1000", "trained-mnist20x20-6x8000", "trained-conv-mnist20x20", "random-784-6x8000")


def _load(case: str):
    if case == "trained-digits-4x1000":
        return _trained()[0]
    if case == "random-784-6x8000":
        return random_layered_circuit(784, [8000] * 6, num_classes=10, seed=0)
    return _from_checkpoint(case.removeprefix("trained-"))[0]


def _timed(f, *args):
    t = time.perf_counter()
    out = f(*args)
    return out, time.perf_counter() - t


def run_case(case: str) -> dict:
    c0 = _load(case)
    row: dict = {"case": case, "gates_O0": c0.num_gates}
    for name, pipe in (("O3", "O3"), ("O3-area", "O3-area")):
        without = tuple(p for p in PIPELINES[pipe] if not p.startswith("resub"))
        before, sec_before = _timed(run_pipeline, c0, without)
        alone, sec_alone = _timed(lambda c: resub(c, depth_bound=pipe == "O3"), before)
        (after, rep), sec_after = _timed(lambda c: run_pipeline(c, pipe, report=True), c0)
        row[name] = {
            "without_resub": [before.num_gates, depth(before), round(sec_before, 2)],
            "resub_alone": [alone.num_gates, depth(alone), round(sec_alone, 2)],
            "with_resub": [after.num_gates, depth(after), round(sec_after, 2)],
            "resub_seconds_in_pipeline": round(sum(r.seconds for r in rep.runs if r.name.startswith("resub")), 2),
            "resub_removed_in_pipeline": sum(r.gates_before - r.gates_after for r in rep.runs
                                             if r.name.startswith("resub")),
            "rounds": rep.rounds,
        }
        proof, sec_proof = _timed(lambda: equivalent(c0, after, method="sat"))
        row[name]["sat_proof"] = [bool(proof), round(sec_proof, 1)]
        if not proof:
            raise AssertionError(f"{case} {name}: result not proved equal: {proof!r}")
    return row


def main(argv: list[str]) -> None:
    cases = argv or list(CASES)
    rows = []
    print(machine())
    print(f"{'case':30s} {'pipeline':8s} {'without':>13s} {'resub alone':>13s} {'with resub':>13s} "
          f"{'resub s':>8s} {'O3 s':>6s} {'SAT proof':>10s}")
    for case in cases:
        try:
            row = run_case(case)
        except FileNotFoundError as e:
            print(f"{case}: skipped ({e})")
            continue
        rows.append(row)
        for name in ("O3", "O3-area"):
            r = row[name]
            fmt = lambda t: f"{t[0]:,} / {t[1]}"
            print(f"{case:30s} {name:8s} {fmt(r['without_resub']):>13s} {fmt(r['resub_alone']):>13s} "
                  f"{fmt(r['with_resub']):>13s} {r['resub_seconds_in_pipeline']:8.2f} {r['with_resub'][2]:6.1f} "
                  f"{'proved' if r['sat_proof'][0] else 'FAILED':>6s} {r['sat_proof'][1]:.0f}s", flush=True)
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "resub.json").write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
