"""External pass: optimise a circuit with Berkeley ABC and read the result back.

Writes the circuit as binary AIGER, runs ``berkeley-abc`` (Debian's name; ``abc`` elsewhere, or
``$LGC_ABC``) with ``read; <script>; write_aiger``, reads the AIGER back (an AND/inverter
circuit) and checks it with :func:`lgc.passes.equivalent` before returning it. Cost: one ABC
process plus the equivalence check; head, input encoder and meta are kept, layers dropped.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from ..ir import Circuit
from ..ir.formats import aiger

DEFAULT_SCRIPT = "strash; dc2; resyn2"
#: ABC's resyn2 and friends are aliases from abc.rc; spelled out so no abc.rc is needed.
ALIASES = {
    "resyn": "b; rw; rwz; b; rwz; b",
    "resyn2": "b; rw; rf; b; rw; rwz; b; rfz; rwz; b",
    "resyn2rs": "b; rs -K 6; rw; rs -K 6 -N 2; rf; rs -K 8; b; rs -K 8 -N 2; rw; rs -K 10; rwz; "
                "rs -K 10 -N 2; b; rs -K 12; rfz; rs -K 12 -N 2; rwz; b",
    "compress2": "b -l; rw -l; rf -l; b -l; rw -l; rwz -l; b -l; rfz -l; rwz -l; b -l",
}


class ABCError(RuntimeError):
    """ABC is missing, failed, or returned a circuit that is not equivalent."""


def find_abc() -> str | None:
    """Path of the ABC binary (``$LGC_ABC``, ``berkeley-abc`` or ``abc``), or None."""
    env = os.environ.get("LGC_ABC")
    if env:
        return shutil.which(env) or (env if os.path.isfile(env) and os.access(env, os.X_OK) else None)
    return shutil.which("berkeley-abc") or shutil.which("abc")


_SHORT = {"b": "balance", "rw": "rewrite", "rwz": "rewrite -z", "rf": "refactor", "rfz": "refactor -z",
          "rs": "resub", "rsz": "resub -z"}


def expand_script(script: str) -> str:
    """Replace the abc.rc aliases (resyn2, b, rw, ...) by ABC's own commands."""
    out = []
    for part in (p.strip() for p in script.split(";")):
        for cmd in (c.strip() for c in ALIASES.get(part, part).split(";")):
            if cmd:
                word, _, rest = cmd.partition(" ")
                out.append((_SHORT.get(word, word) + " " + rest).strip())
    return "; ".join(out)


def run_abc(circuit: Circuit, script: str, *, timeout: float | None = None) -> Circuit:
    """Run ABC on ``circuit`` and return what it wrote, unchecked (see :func:`abc`)."""
    exe = find_abc()
    if exe is None:
        raise ABCError("Berkeley ABC is not installed: no 'berkeley-abc' or 'abc' on PATH (set LGC_ABC, or "
                       "install it, e.g. apt-get install berkeley-abc)")
    if any(ch in script for ch in '"\n'):
        raise ValueError("the ABC script must be one line without double quotes")
    with tempfile.TemporaryDirectory(prefix="lgc-abc-") as tmp:
        src, dst = os.path.join(tmp, "in.aig"), os.path.join(tmp, "out.aig")
        aiger.save(circuit, src, binary=True)
        command = f"read {src}; strash; {expand_script(script)}; strash; write_aiger {dst}"
        try:
            proc = subprocess.run([exe, "-c", command], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ABCError(f"ABC did not finish within {timeout} s") from None
        log = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0 or not os.path.exists(dst):
            raise ABCError(f"ABC failed (exit {proc.returncode}) on script {script!r}: {log[-2000:]}")
        result = aiger.load(dst)
    return result.replace(head=circuit.head, input_encoder=circuit.input_encoder, meta=dict(circuit.meta))


def abc(circuit: Circuit, script: str = DEFAULT_SCRIPT, *, check: bool = True, timeout: float | None = None) -> Circuit:
    """Optimise ``circuit`` with ABC's ``script`` (e.g. ``'strash; dc2'``, ``'resyn2'``).

    Returns an AND/inverter Circuit with the same inputs, outputs, head and encoder; with
    ``check`` the result is proved equal with ``lgc.passes.equivalent`` (ABCError otherwise).
    """
    circuit = circuit.validate()
    result = run_abc(circuit, script, timeout=timeout)
    if result.num_inputs != circuit.num_inputs or result.num_outputs != circuit.num_outputs:
        raise ABCError(f"ABC changed the interface: {result.num_inputs}/{result.num_outputs} inputs/outputs "
                       f"instead of {circuit.num_inputs}/{circuit.num_outputs}")
    if check:
        from .equivalence import equivalent  # lazily: keeps this module light
        res = equivalent(circuit, result)
        if not res:
            raise ABCError(f"ABC's result differs from the input (method {res.method}, "
                           f"counterexample {res.counterexample})")
    return result
