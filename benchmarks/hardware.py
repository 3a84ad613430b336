"""Benchmark hardware-oriented optimisation: lgc's passes against Berkeley ABC, plus yosys cells.

For each case: 2-input gate count and depth (``lgc.ir.levels``) of the lgc circuit, the AND count
of the AIGER file lgc writes (dead gates included), AIG AND count and AIG levels as ABC counts them
after reading that file (its reader hashes structurally and drops dangling nodes), for lgc O0 / O2 / O3, ABC
``resyn2`` and ``dc2`` on the unoptimised AIG, ABC ``dc2`` after lgc O2, and ABC's 2-input LUT mapping
(``dc2; if -K 2``, read back through BLIF and cleaned with lgc O1: the cost model of lgc's own
2-input gates) from O0 and from O2; seconds for each (ABC's include process start and file I/O).
The small cases are also synthesised by yosys (``synth -top``, cell counts) from lgc's Verilog,
with raw output bits only and with the group-sum head (popcount trees and argmax).
Every ABC result is read back with lgc's AIGER reader and checked equal with lgc.passes.equivalent.

Cases: random difflogic-shaped networks (784 -> 4 x 2000 -> 10; 784 -> 6 x 8000 -> 10) and,
when torch works, a network trained briefly on scikit-learn digits (offline).
Last, the seconds to write and read back a 1M-gate circuit in each format (``export-speed``).
Run with no arguments: ``python benchmarks/hardware.py`` (or name cases, ``export-speed`` among
them); writes ``benchmarks/out/hardware.json``.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from passes import machine  # noqa: E402  (one definition of the machine line)

from lgc.backends import export as lgc_export, verilog  # noqa: E402
from lgc.ir import depth, random_layered_circuit  # noqa: E402
from lgc.ir.formats import aiger, blif  # noqa: E402
from lgc.passes import equivalent, optimize  # noqa: E402
from lgc.passes.abc import expand_script, find_abc  # noqa: E402

CASES = {
    "random-784-4x2000": dict(num_inputs=784, widths=[2000] * 4, num_classes=10, yosys=True),
    "random-784-6x8000": dict(num_inputs=784, widths=[8000] * 6, num_classes=10, yosys=False),
    "trained-digits-4x1000": dict(trained=True, yosys=True),
}
ABC_FLOWS = {"abc resyn2": "resyn2", "abc dc2": "dc2"}


def _trained():
    import torch  # noqa: F401
    from lgc.frontend import load_checkpoint, lower
    from lgc.training import TrainConfig, train
    out = pathlib.Path(tempfile.mkdtemp(prefix="lgc-hw-train-"))
    train(TrainConfig(dataset="digits", num_neurons=1000, num_layers=4, tau=10.0, num_iterations=400,
                      eval_freq=400, out=str(out), progress=False, implementation="auto"), log=lambda *a, **k: None)
    model = load_checkpoint(out / "best.pt")
    summary = json.loads((out / "final.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    return lower(model.eval()), summary


def _abc_stats(exe: str, path: str, script: str = "", out: str | None = None) -> tuple[int, int, float]:
    """(AND count, AIG levels, seconds) of ``path`` after ``script`` (none: as written)."""
    cmd = f"read {path}; " + (f"strash; {expand_script(script)}; " if script else "") + "print_stats"
    if out:
        cmd += f"; write_aiger {out}"
    t = time.perf_counter()
    r = subprocess.run([exe, "-c", cmd], capture_output=True, text=True, timeout=1800)
    sec = time.perf_counter() - t
    m = re.findall(r"and =\s*(\d+)\s+lev =\s*(\d+)", r.stdout)
    if r.returncode or not m:
        raise RuntimeError(f"ABC failed on {cmd!r}: {r.stdout[-1500:]}{r.stderr[-500:]}")
    return int(m[-1][0]), int(m[-1][1]), sec


def _yosys_cells(circuit, tmp: str) -> dict | None:
    exe = shutil.which("yosys")
    if exe is None:
        return None
    src, rep = os.path.join(tmp, "net.v"), os.path.join(tmp, "stat.txt")
    verilog.write(circuit, src, module="lgc_net")
    t = time.perf_counter()
    r = subprocess.run([exe, "-q", "-p", f"read_verilog {src}; synth -top lgc_net; tee -q -o {rep} stat"],
                       capture_output=True, text=True, timeout=1800)
    sec = time.perf_counter() - t
    if r.returncode:
        return {"error": (r.stdout + r.stderr)[-500:]}
    text = open(rep).read()
    cells = re.search(r"Number of cells:\s+(\d+)", text)
    kinds = dict((k, int(v)) for v, k in re.findall(r"^\s+(\d+)\s+\$_(\w+)_\s*$", text, re.M)) or \
        dict((k, int(v)) for k, v in re.findall(r"\$_(\w+)_\s+(\d+)", text))
    return {"cells": int(cells.group(1)) if cells else None, "by_type": kinds, "seconds": round(sec, 2)}


def run_case(name: str, spec: dict, exe: str) -> dict:
    extra = {}
    if spec.get("trained"):
        c0, summary = _trained()
        extra = {"test_accuracy_eval": summary.get("test_acc_eval", summary.get("test_accuracy"))}
    else:
        c0 = random_layered_circuit(spec["num_inputs"], spec["widths"], num_classes=spec["num_classes"], seed=0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lgc-hw-") as tmp:
        base_aig = os.path.join(tmp, "o0.aig")
        aiger.save(c0, base_aig)
        variants = {}
        for level in (0, 2, 3):
            t = time.perf_counter()
            c = optimize(c0, level=level) if level else c0
            sec = time.perf_counter() - t
            variants[f"lgc O{level}"] = c
            path = os.path.join(tmp, f"o{level}.aig")
            aiger.save(c, path)
            ands, lev, _ = _abc_stats(exe, path)
            raw = int(open(path, "rb").readline().split()[5])
            rows.append({"flow": f"lgc O{level}", "gates": c.num_gates, "depth": depth(c), "aiger_ands": raw,
                         "aig_ands": ands,
                         "aig_levels": lev, "seconds": round(sec, 3)})
        flows = [(label, base_aig, script) for label, script in ABC_FLOWS.items()]
        flows.append(("lgc O2 + abc dc2", os.path.join(tmp, "o2.aig"), "dc2"))
        for label, src, script in flows:
            out = os.path.join(tmp, "abc_out.aig")
            ands, lev, sec = _abc_stats(exe, src, script, out)
            # ABC drops the comment that holds the head and encoder
            back = aiger.load(out).replace(head=c0.head, input_encoder=c0.input_encoder)
            eq = equivalent(c0, back)
            if not eq:
                raise RuntimeError(f"{label}: ABC result differs from the circuit ({eq.method})")
            rows.append({"flow": label, "gates": back.num_gates, "depth": depth(back), "aig_ands": ands,
                         "aig_levels": lev, "seconds": round(sec, 3), "checked": eq.method})
        # 2-input LUT mapping (ABC's ``if -K 2``): the same cost model as lgc's 2-input gates
        for label, src, script in (("abc dc2 + if -K 2", base_aig, "dc2"), ("lgc O2 + abc dc2 + if -K 2",
                                                                              os.path.join(tmp, "o2.aig"), "dc2")):
            out = os.path.join(tmp, "lut.blif")
            t = time.perf_counter()
            cmd = f"read {src}; strash; {expand_script(script)}; if -K 2; write_blif {out}"
            r = subprocess.run([exe, "-c", cmd], capture_output=True, text=True, timeout=1800)
            sec = time.perf_counter() - t
            if r.returncode or not os.path.exists(out):
                raise RuntimeError(f"ABC failed on {cmd!r}: {r.stdout[-1500:]}")
            back = blif.load(out).replace(head=c0.head, input_encoder=c0.input_encoder)
            back = optimize(back, level=1)  # folds ABC's output buffers
            eq = equivalent(c0, back)
            if not eq:
                raise RuntimeError(f"{label}: ABC result differs from the circuit ({eq.method})")
            rows.append({"flow": label, "gates": back.num_gates, "depth": depth(back), "aig_ands": "",
                         "aig_levels": "", "seconds": round(sec, 3), "checked": eq.method})
        yosys = None
        if spec.get("yosys"):
            o2 = variants["lgc O2"]
            yosys = {"lgc O0, bits only": _yosys_cells(c0.replace(head=None), tmp),
                     "lgc O2, bits only": _yosys_cells(o2.replace(head=None), tmp),
                     "lgc O2 + head (popcounts, argmax)": _yosys_cells(o2, tmp)}
    return {"case": name, "inputs": c0.num_inputs, "outputs": c0.num_outputs, "rows": rows, "yosys": yosys, **extra}


def export_speed(widths=(250_000,) * 4) -> dict:
    """Seconds to write (and read back) a 1M-gate circuit in each hardware format."""
    c = random_layered_circuit(784, list(widths), num_classes=10, seed=0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lgc-hw-speed-") as tmp:
        for label, suffix, opts, reader in (("verilog", ".v", {}, None),
                                            ("verilog pipeline_every=2", ".v", {"pipeline_every": 2}, None),
                                            ("aiger binary", ".aig", {}, aiger.load),
                                            ("aiger ascii", ".aag", {}, aiger.load),
                                            ("blif", ".blif", {}, blif.load)):
            path = os.path.join(tmp, "net" + suffix)
            t = time.perf_counter()
            lgc_export(c, path, **opts)
            write = time.perf_counter() - t
            read = None
            if reader is not None:
                t = time.perf_counter()
                reader(path)
                read = time.perf_counter() - t
            rows.append({"format": label, "gates": c.num_gates, "megabytes": round(os.path.getsize(path) / 1e6, 1),
                         "write_s": round(write, 2), "read_s": None if read is None else round(read, 2)})
            os.remove(path)
    return {"rows": rows}


def main(argv: list[str]) -> None:
    exe = find_abc()
    if exe is None:
        sys.exit("berkeley-abc is not installed (apt-get install berkeley-abc)")
    names = [a for a in argv if a != "export-speed"] if argv else list(CASES)
    mach = machine()
    print(f"machine: {mach['cpu']}, {mach['cores']} cores, flags {' '.join(mach['flags'])}")
    results = []
    for name in names:
        try:
            res = run_case(name, CASES[name], exe)
        except ImportError as e:  # the trained case needs torch
            print(f"\n{name}: skipped ({e})")
            continue
        results.append(res)
        print(f"\n{name}: {res['inputs']} inputs, {res['outputs']} outputs"
              + (f", eval accuracy {res['test_accuracy_eval']}" if res.get("test_accuracy_eval") is not None else ""))
        base = res["rows"][1]["aig_ands"]
        print(f"{'flow':<28}{'gates':>9}{'depth':>7}{'file ANDs':>10}{'AIG ANDs':>10}{'vs O2':>8}{'AIG lev':>9}"
              f"{'seconds':>9}")
        for r in res["rows"]:
            print(f"{r['flow']:<28}{r['gates']:>9}{r['depth']:>7}{r.get('aiger_ands', ''):>10}{r['aig_ands']:>10}"
                  + (f"{r['aig_ands'] / max(base, 1):>8.3f}" if r["aig_ands"] != "" else f"{'':>8}")
                  + f"{r['aig_levels']:>9}{r['seconds']:>9.2f}")
        if res["yosys"]:
            for label, y in res["yosys"].items():
                print(f"yosys synth ({label}): {y}")
    speed = None
    if not argv or "export-speed" in argv:
        speed = export_speed()
        print(f"\nexport speed ({speed['rows'][0]['gates']} gates):")
        print(f"{'format':<26}{'MB':>8}{'write s':>9}{'read s':>9}")
        for r in speed["rows"]:
            print(f"{r['format']:<26}{r['megabytes']:>8}{r['write_s']:>9}{r['read_s'] if r['read_s'] is not None else '':>9}")
    out = HERE / "out" / "hardware.json"
    out.parent.mkdir(exist_ok=True)
    if argv and out.exists():  # a partial run updates the cases it ran and keeps the others
        old = json.loads(out.read_text())
        ran = {r["case"] for r in results}
        results = [r for r in old.get("results", []) if r["case"] not in ran] + results
        speed = speed or old.get("export_speed")
    out.write_text(json.dumps({"machine": mach, "results": results, "export_speed": speed}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
