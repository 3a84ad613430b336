"""Where the CPU kernel's time goes, stage by stage, and A/B tests of its compile-time knobs.

    python tools/kernel_stages.py                          # cpu-avx512, 48K net, 131072 rows
    python tools/kernel_stages.py --variant nopage=-DPAGE_AHEAD=0 --rounds 5
    python tools/kernel_stages.py --target cpu-avx2 --width 64000

Builds lgc/backends/cpu_kernel.c into a small C harness (kernel_stages.c) with the target's
flags (plus each --variant's extra flags), dumps the schedule of a random MNIST-shaped net
compiled at O2 exactly as the ``cpu-*`` targets run it, and reports nanoseconds per sample: the
whole ``lgc_run`` (best of reps, thread CPU time) and its stages run one after another without
overlap (pack rows -> gates -> readout). Variants run interleaved, round after round, and the
table shows the best round of each, since this host's memory bandwidth varies with its
neighbours. Every build's scores are checked against lgc.ir.simulate. Writes
tools/out/kernel_stages.json.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "out" / "kernel_stages.json"


def dump(circuit, target: str, rows: int, workdir: pathlib.Path) -> dict:
    """Schedule, inputs and reference scores as the harness reads them."""
    import lgc
    from lgc.backends import cpu_c
    from lgc.backends._schedule import readout_schedule
    ternary = bool(cpu_c.library(target)[1].lgc_has_ternary())
    sched, r = readout_schedule(circuit, fuse=ternary, inline=True)
    header = np.array([sched.num_inputs, sched.num_slots, len(sched.groups), len(sched.gates), len(sched.out_slots),
                       circuit.head.k, len(r.terms), len(r.term_slots), len(sched.tgates), len(r.term_groups),
                       len(r.term_gates)], np.int64)
    with open(workdir / "sched.bin", "wb") as f:
        f.write(header.tobytes())
        for table in (sched.groups, sched.gates, sched.out_slots, r.terms, r.term_slots, r.consts, sched.tgates,
                      r.term_groups, r.term_gates):
            f.write(np.ascontiguousarray(table, dtype=np.int32).tobytes())
    x = np.random.default_rng(0).random((rows, circuit.num_inputs)) < 0.5
    x.view(np.uint8).tofile(workdir / "x.bin")
    lgc.ir.simulate(circuit, x[:1024]).astype(np.int32).tofile(workdir / "ref.bin")
    return {"gates": int(circuit.num_gates), "slots": int(sched.num_slots), "two_input_gates": len(sched.gates),
            "three_input_gates": len(sched.tgates), "head_gates": len(r.term_gates), "slot_reads": len(r.term_slots)}


def build(target: str, extra: list[str], workdir: pathlib.Path, name: str) -> pathlib.Path:
    from lgc.backends import cpu_c
    cc = cpu_c.compiler()
    if cc is None:
        sys.exit("no C compiler (gcc or cc); set LGC_CC")
    exe = workdir / f"stages-{name}"
    cmd = [cc, "-O3", "-std=gnu11", *cpu_c.build_flags(target), *extra,
           f'-DKERNEL="{cpu_c.SOURCE}"', str(HERE / "kernel_stages.c"), "-o", str(exe)]
    subprocess.run(cmd, check=True)
    return exe


def run(exe: pathlib.Path, workdir: pathlib.Path, rows: int, reps: int) -> dict:
    out = subprocess.run([str(exe), str(workdir / "sched.bin"), str(workdir / "x.bin"), str(workdir / "ref.bin"),
                          str(rows), str(reps)], check=True, capture_output=True, text=True).stdout.split("\n")
    fields = {line.split()[0]: line.split()[1:] for line in out if line.strip()}
    if fields["check"] != ["ok"]:
        raise SystemExit(f"{exe.name}: scores differ from lgc.ir.simulate")
    pack, gates, readout = (float(v) for v in fields["stages"])
    return {"full": float(fields["full"][0]), "pack": pack, "gates": gates, "readout": readout}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="cpu-avx512", choices=("c", "cpu-avx2", "cpu-avx512"))
    ap.add_argument("--width", type=int, default=8000, help="gates per layer of the 6-layer net (8000: 48K gates)")
    ap.add_argument("--rows", type=int, default=131072)
    ap.add_argument("--reps", type=int, default=3, help="lgc_run calls per round (best counts)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                    help="an extra build with compiler flags, e.g. nopage=-DPAGE_AHEAD=0 (repeatable)")
    args = ap.parse_args()
    import lgc
    from lgc.backends import cpu_c
    from lgc.backends.bench import mnist_shaped
    why = cpu_c.available(args.target)
    if why:
        sys.exit(f"{args.target}: {why}")
    circuit = lgc.optimize(mnist_shaped(args.width), level=2)
    with tempfile.TemporaryDirectory(prefix="lgc-stages-") as tmp:
        workdir = pathlib.Path(tmp)
        net = dump(circuit, args.target, args.rows, workdir)
        builds = {"kernel": build(args.target, [], workdir, "kernel")}
        for v in args.variant:
            name, _, flags = v.partition("=")
            builds[name] = build(args.target, flags.split(), workdir, name)
        rounds: dict[str, list[dict]] = {name: [] for name in builds}
        for _ in range(args.rounds):
            for name, exe in builds.items():
                rounds[name].append(run(exe, workdir, args.rows, args.reps))
    best = {name: {key: min(r[key] for r in rs) for key in rs[0]} for name, rs in rounds.items()}
    print(f"{args.target}, {args.width * 6:,} gates -> {net['gates']:,} after O2: {net['two_input_gates']:,} 2-input + "
          f"{net['three_input_gates']:,} 3-input gates, {net['head_gates']:,} head gates, {net['slots']:,} slots; "
          f"{args.rows:,} rows; ns per sample, best of {args.rounds} rounds")
    print(f"{'build':12s} {'full':>8s} {'M/s':>7s} {'pack':>7s} {'gates':>7s} {'readout':>8s}")
    for name, b in best.items():
        print(f"{name:12s} {b['full']:8.1f} {1e3 / b['full']:7.2f} {b['pack']:7.1f} {b['gates']:7.1f} {b['readout']:8.1f}")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"target": args.target, "net": net, "rows": args.rows, "best": best, "rounds": rounds,
                               "variants": args.variant}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
