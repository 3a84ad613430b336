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
Then (issue 19) lgc O2 / O3 against ABC's best of a portfolio of 2-input LUT mappings on the trained
digits net, the trained MNIST 6 x 8000 and conv nets under benchmarks/out/ (train commands in
RESULTS.md, Hardware) and the random 48K net, every lgc result SAT-proved, plus the ``cpu`` throughput
of O2 before issue 19 (``OLD_O2``), O2 and O3 on the MNIST net (``python benchmarks/hardware.py portfolio
[cases]``; writes ``benchmarks/out/hardware_portfolio.json``).
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
from lgc.passes import equivalent, optimize, output_polarity  # noqa: E402
from lgc.passes.external_abc import expand_script, find_abc  # noqa: E402

CASES = {
    "random-784-4x2000": dict(num_inputs=784, widths=[2000] * 4, num_classes=10, yosys=True),
    "random-784-6x8000": dict(num_inputs=784, widths=[8000] * 6, num_classes=10, yosys=False),
    "trained-digits-4x1000": dict(trained=True, yosys=True),
}
#: the lgc-vs-ABC gate-count comparison (issue 19): trained nets and the random 48K net
PORTFOLIO_CASES = ("trained-digits-4x1000", "trained-mnist20x20-6x8000", "trained-conv-mnist20x20",
                   "random-784-6x8000")
ABC_FLOWS = {"abc resyn2": "resyn2", "abc dc2": "dc2"}
#: ABC's 2-input LUT mapping after each script of a portfolio, run from the unoptimised AIG and from
#: lgc O2's; the best result counts. Aliases (abc.rc) spelled out here so no abc.rc is needed.
PORTFOLIO_ALIASES = {
    "resyn2": "balance; rewrite; refactor; balance; rewrite; rewrite -z; balance; refactor -z; rewrite -z; balance",
    "compress2rs": "balance -l; resub -K 6 -l; rewrite -l; resub -K 6 -N 2 -l; refactor -l; resub -K 8 -l; "
                   "balance -l; resub -K 8 -N 2 -l; rewrite -l; resub -K 10 -l; rewrite -z -l; "
                   "resub -K 10 -N 2 -l; balance -l; resub -K 12 -l; refactor -z -l; resub -K 12 -N 2 -l; "
                   "rewrite -z -l; balance -l",
}
PORTFOLIO = {
    "dch; if -K 2": "dch; if -K 2",
    "dc2; if -K 2": "dc2; if -K 2",
    "dc2; dch; if -K 2": "dc2; dch; if -K 2",
    "resyn2; if -K 2": PORTFOLIO_ALIASES["resyn2"] + "; if -K 2",
    "compress2rs; dch; if -K 2": PORTFOLIO_ALIASES["compress2rs"] + "; dch; if -K 2",
    "dch; if -K 2; mfs": "dch; if -K 2; mfs",
}
OUT_DIR = HERE / "out"


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


#: O2 as it was before issue 19 (no output polarity, structural hashing only, no rewriting): the
#: "before" of the gate and throughput comparisons
OLD_O2 = ("dead_gate_elimination", "constant_fold", "simplify_same_operand", "collapse_passthrough", "absorb_not",
          "structural_hash")


def _old_o2(c):
    """O2 before issue 19: its NOT absorption kept one inverter per node an output needed negated
    (no negated output literals then)."""
    from lgc.passes import run_pipeline
    return run_pipeline(c, OLD_O2).with_output_inverters()


def _from_checkpoint(name: str):
    """A net ``lgc train`` wrote under benchmarks/out/<name> (see RESULTS.md for the commands)."""
    import torch  # noqa: F401
    from lgc.frontend import load_checkpoint, lower
    run = OUT_DIR / name
    if not (run / "best.pt").exists():
        raise FileNotFoundError(f"{run}/best.pt is missing: train it first (command in RESULTS.md, Hardware)")
    model = load_checkpoint(run / "best.pt")
    summary = json.loads((run / "final.json").read_text()) if (run / "final.json").exists() else {}
    return lower(model.eval()), summary


def _abc_mapped(exe: str, src: str, script: str, c0, tmp: str, timeout: int = 3600):
    """(circuit, seconds): ABC's ``strash; script`` on the AIGER file ``src``, its BLIF read back as lgc
    gates with ``c0``'s head and encoder (ABC drops them) and ABC's output buffers folded (O1)."""
    out = os.path.join(tmp, "lut.blif")
    if os.path.exists(out):
        os.remove(out)
    t = time.perf_counter()
    cmd = f"read {src}; strash; {script}; write_blif {out}"
    r = subprocess.run([exe, "-c", cmd], capture_output=True, text=True, timeout=timeout)
    sec = time.perf_counter() - t
    if r.returncode or not os.path.exists(out):
        raise RuntimeError(f"ABC failed on {cmd!r}: {r.stdout[-1500:]}")
    back = blif.load(out).replace(head=c0.head, input_encoder=c0.input_encoder)
    return optimize(back, level=1), sec


def _abc_lut2(exe: str, src: str, script: str, c0, tmp: str) -> dict:
    """ABC ``strash; script`` (ending in a 2-input LUT mapping) read back as lgc gates, checked equal by
    random simulation (the best of the portfolio is then proved by SAT)."""
    back, sec = _abc_mapped(exe, src, script, c0, tmp)
    eq = equivalent(c0, back, method="simulate")
    if eq.equal is False:  # random simulation can only disprove
        raise RuntimeError(f"{script}: ABC result differs from the circuit ({eq.method})")
    return {"gates": back.num_gates, "depth": depth(back), "seconds": round(sec, 2), "checked": eq.method,
            "circuit": back}


def run_portfolio(name: str, c0, exe: str) -> dict:
    """lgc O2 (before issue 19 and now), O3, O3-area and ABC's best 2-LUT mapping of a portfolio,
    every lgc result and the best ABC one SAT-proved equal to ``c0``."""
    rows = {}
    with tempfile.TemporaryDirectory(prefix="lgc-hw-pf-") as tmp:
        for label, fn in (("lgc O2 before issue 19", _old_o2), ("lgc O2", lambda c: optimize(c, level=2)),
                          ("lgc O3", lambda c: optimize(c, level=3)),
                          ("lgc O3 area", lambda c: optimize(c, level=3, area_only=True))):
            t = time.perf_counter()
            c = fn(c0)
            sec = time.perf_counter() - t
            t = time.perf_counter()
            eq = equivalent(c0, c, method="sat")
            if not eq:
                raise RuntimeError(f"{label} differs from its input")
            rows[label] = {"gates": c.num_gates, "depth": depth(c), "negated_outputs": c.num_negated_outputs,
                           "seconds": round(sec, 2), "checked": eq.method,
                           "sat_seconds": round(time.perf_counter() - t, 1), "circuit": c}
        starts = {"O0": os.path.join(tmp, "o0.aig"), "O2": os.path.join(tmp, "o2.aig")}
        aiger.save(c0, starts["O0"])
        aiger.save(rows["lgc O2"]["circuit"], starts["O2"])
        abc = {}
        for label, script in PORTFOLIO.items():
            for start, path in starts.items():
                abc[f"abc {label} (from {start})"] = _abc_lut2(exe, path, script, c0, tmp)
    best = min(abc, key=lambda k: (abc[k]["gates"], abc[k]["depth"]))
    # ABC on its own (from the unoptimised AIG) and ABC applied to lgc O2's result
    best_o0 = min((k for k in abc if k.endswith("(from O0)")), key=lambda k: (abc[k]["gates"], abc[k]["depth"]))
    for key in {best, best_o0}:
        eq = equivalent(c0, abc[key]["circuit"], method="sat")
        if not eq:
            raise RuntimeError(f"{key}: ABC result differs from the circuit (SAT)")
        abc[key]["checked"] = "sat"
    # the same freedom for ABC's best: its output inverters as negated literals (lgc's output polarity)
    t = time.perf_counter()
    lit = output_polarity(abc[best]["circuit"])
    sec = time.perf_counter() - t
    if not equivalent(c0, lit, method="sat"):
        raise RuntimeError("output polarity changed ABC's best result")
    abc_lit = {"gates": lit.num_gates, "depth": depth(lit), "negated_outputs": lit.num_negated_outputs,
               "seconds": round(abc[best]["seconds"] + sec, 2), "checked": "sat", "circuit": lit}
    rows["ABC best + output literals"] = abc_lit
    for r in list(rows.values()) + list(abc.values()):
        r.pop("circuit")
    return {"case": name, "lgc": rows, "abc": abc, "abc_best": best, "abc_best_from_o0": best_o0}


def cpu_throughput(c0, variants: dict) -> dict:
    """Samples/s of the ``cpu`` target for each circuit (same batch, side by side, threads=1)."""
    import numpy as np
    import lgc
    from lgc.backends.bench import measure_throughput
    x = np.random.default_rng(0).random((65536, c0.num_inputs)) < 0.5
    out = {}
    for label, c in variants.items():
        net = lgc.compile(c, target="cpu", opt_level=0, threads=1)
        ref = lgc.ir.simulate(c0, x[:512])
        if not np.array_equal(net(x[:512]), ref):
            raise RuntimeError(f"{label}: compiled net differs from the oracle")
        out[label] = {"gates": c.num_gates, "samples_per_s": round(measure_throughput(net, x, repeats=5,
                                                                                  clock=time.thread_time))}
    return out


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
            back, sec = _abc_mapped(exe, src, f"{expand_script(script)}; if -K 2", c0, tmp, timeout=1800)
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


def _portfolio_circuit(name: str):
    if name == "trained-digits-4x1000":
        return _trained()
    if name.startswith("trained-"):
        return _from_checkpoint(name[len("trained-"):])
    spec = CASES[name]
    return random_layered_circuit(spec["num_inputs"], spec["widths"], num_classes=spec["num_classes"], seed=0), {}


def main_portfolio(exe: str, names: list[str]) -> None:
    results = []
    for name in names:
        c0, summary = _portfolio_circuit(name)
        res = run_portfolio(name, c0, exe)
        res["test_accuracy_eval"] = summary.get("test_acc_eval", summary.get("test_accuracy"))
        res["inputs"], res["outputs"], res["gates_o0"] = c0.num_inputs, c0.num_outputs, c0.num_gates
        if name == "trained-mnist20x20-6x8000":
            variants = {"lgc O2 before issue 19": _old_o2(c0), "lgc O2": optimize(c0, level=2),
                        "lgc O3": optimize(c0, level=3)}
            res["cpu_throughput"] = cpu_throughput(c0, variants)
        results.append(res)
        best = res["abc"][res["abc_best"]]
        print(f"\n{name}: {c0.num_inputs} inputs, {c0.num_outputs} outputs, {c0.num_gates:,} gates at O0, "
              f"load {os.getloadavg()[0]:.1f}")
        print(f"{'flow':<44}{'gates':>9}{'depth':>7}{'vs ABC best':>12}{'seconds':>9}")
        for label, r in list(res["lgc"].items()) + list(res["abc"].items()):
            print(f"{label:<44}{r['gates']:>9,}{r['depth']:>7}{r['gates'] / best['gates']:>12.4f}{r['seconds']:>9.2f}")
        b0 = res["abc"][res["abc_best_from_o0"]]
        print(f"ABC best: {res['abc_best']}; from the unoptimised AIG: {res['abc_best_from_o0']} ({b0['gates']:,} "
              f"gates; lgc O3 / that {res['lgc']['lgc O3']['gates'] / b0['gates']:.4f}, "
              f"O2 / that {res['lgc']['lgc O2']['gates'] / b0['gates']:.4f})", flush=True)
        for label, r in res.get("cpu_throughput", {}).items():
            print(f"cpu throughput, threads=1, {label}: {r['gates']:,} gates, {r['samples_per_s']:,} samples/s")
    out = OUT_DIR / "hardware_portfolio.json"
    OUT_DIR.mkdir(exist_ok=True)
    old = json.loads(out.read_text()).get("results", []) if out.exists() else []
    ran = {r["case"] for r in results}
    results = [r for r in old if r["case"] not in ran] + results
    out.write_text(json.dumps({"machine": machine(), "results": results}, indent=1))
    print(f"\nwrote {out}")


def main(argv: list[str]) -> None:
    exe = find_abc()
    if exe is None:
        sys.exit("berkeley-abc is not installed (apt-get install berkeley-abc)")
    if argv and argv[0] == "portfolio":
        main_portfolio(exe, argv[1:] or list(PORTFOLIO_CASES))
        return
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
    if not argv:
        main_portfolio(exe, list(PORTFOLIO_CASES))


if __name__ == "__main__":
    main(sys.argv[1:])
