"""Measuring compiled nets: throughput, compile time, and the difflogic-style baseline.

Shared by ``lgc bench`` and ``benchmarks/throughput.py`` so both report the same figures.
The baseline is what difflogic's ``CompiledLogicNet`` generates: one straight-line C function
with one statement per gate over uint64 words (64 samples), a bit-sliced ripple-carry group
sum, built with ``gcc -O1``; its compile time grows steeply with the gate count.
"""
from __future__ import annotations

import ctypes
import os
import time
from typing import Any, Callable

import numpy as np

from .._build import BuildError, build_shared_library, find_tool
from ..ir import Circuit, random_layered_circuit


def measure_throughput(net: Callable[[Any], Any], x: np.ndarray, *, repeats: int = 3,
                       min_seconds: float = 0.3, clock: Callable[[], float] = time.perf_counter) -> float:
    """Samples per second of ``net(x)`` (packing and readout included): the best of ``repeats``
    timings, each running whole calls for at least ``min_seconds`` of ``clock``. The default is
    wall-clock time; ``time.thread_time`` counts only this thread's CPU time, which is fairer
    on a shared machine for a single-threaded net (threads=1 runs in the calling thread)."""
    net(x[: min(len(x), 1024)])  # warm up: kernels loaded, pages touched
    best = 0.0
    for _ in range(max(1, repeats)):
        done, t0 = 0, clock()
        while True:
            net(x)
            done += len(x)
            dt = clock() - t0
            if dt >= min_seconds:
                break
        best = max(best, done / dt)
    return best


def mnist_shaped(width: int, layers: int = 6, classes: int = 10, seed: int = 0) -> Circuit:
    """A random difflogic-shaped MNIST network: 784 inputs -> ``layers`` x ``width`` -> ``classes``."""
    return random_layered_circuit(784, [width] * layers, num_classes=classes, tau=10.0, seed=seed)


# ---- the difflogic-style baseline ----

_EXPR = {
    0: "0ULL", 1: "{a} & {b}", 2: "{a} & ~{b}", 3: "{a}", 4: "~{a} & {b}", 5: "{b}", 6: "{a} ^ {b}",
    7: "{a} | {b}", 8: "~({a} | {b})", 9: "~({a} ^ {b})", 10: "~{b}", 11: "{a} | ~{b}", 12: "~{a}",
    13: "~{a} | {b}", 14: "~({a} & {b})", 15: "~0ULL",
}


def difflogic_source(circuit: Circuit) -> str:
    """C source in the style of difflogic's compiled model (one statement per gate)."""
    if circuit.head is None:
        raise ValueError("the difflogic-style baseline needs a group-sum head")
    circuit = circuit.with_output_inverters()  # difflogic's code has no output literals
    n, k, o = circuit.num_inputs, circuit.head.k, circuit.num_outputs
    group = o // k
    sum_bits = max(1, int(np.ceil(np.log2(group + 1))))
    name = lambda node: f"inp[{node}]" if node < n else f"v{node - n}"  # noqa: E731
    lines = ["#include <stdint.h>", "#include <stdlib.h>", "#include <stdbool.h>",
             "static void logic_gate_net(uint64_t const *inp, uint64_t *out) {"]
    for i, (op, a, b) in enumerate(zip(circuit.op.tolist(), circuit.a.tolist(), circuit.b.tolist())):
        lines.append(f"  const uint64_t v{i} = {_EXPR[op].format(a=name(a), b=name(b))};")
    for j, node in enumerate(circuit.outputs.tolist()):
        lines.append(f"  out[{j}] = {name(node)};")
    lines.append("}")
    lines.append(f"""
void apply_logic_gate_net(bool const *inp, int32_t *out, size_t len) {{
  uint64_t *inp_temp = malloc({n} * sizeof(uint64_t));
  uint64_t *out_temp = malloc({o} * sizeof(uint64_t));
  uint64_t out_temp_o[{sum_bits}];
  for (size_t i = 0; i < len / 64; ++i) {{
    for (size_t d = 0; d < {n}; ++d) {{  /* pack: one bit at a time */
      uint64_t res = 0;
      for (size_t b = 0; b < 64; ++b) res |= (uint64_t)(!!inp[(i * 64 + b) * {n} + d]) << b;
      inp_temp[d] = res;
    }}
    logic_gate_net(inp_temp, out_temp);
    for (size_t c = 0; c < {k}; ++c) {{  /* group sum: bit-sliced ripple-carry adder */
      for (size_t d = 0; d < {sum_bits}; ++d) out_temp_o[d] = 0;
      for (size_t a = 0; a < {group}; ++a) {{
        uint64_t carry = out_temp[c * {group} + a];
        for (size_t d = 0; d < {sum_bits}; ++d) {{
          const uint64_t t = out_temp_o[d];
          out_temp_o[d] = carry ^ t;
          carry = carry & t;
        }}
      }}
      for (size_t b = 0; b < 64; ++b) {{
        int32_t res = 0;
        for (size_t d = 0; d < {sum_bits}; ++d) res |= (int32_t)((out_temp_o[d] >> b) & 1) << d;
        out[(i * 64 + b) * {k} + c] = res;
      }}
    }}
  }}
  free(inp_temp);
  free(out_temp);
}}
""")
    return "\n".join(lines)


class DifflogicBaseline:
    """The baseline built and loaded with ctypes; ``__call__(x)`` takes bool [N, n] with N a
    multiple of 64 (difflogic pads batches itself) and returns int32 [N, k]."""

    def __init__(self, circuit: Circuit, *, opt: str = "-O1", compiler: str | None = None):
        cc = compiler or find_tool("gcc", "LGC_CC")
        if cc is None:
            raise BuildError("no C compiler for the difflogic-style baseline")
        self.circuit = circuit
        t0 = time.perf_counter()
        source = difflogic_source(circuit)
        path = build_shared_library({"difflogic_net.c": source}, cc, [opt, "-shared", "-fPIC"], kind="baseline")
        self.compile_seconds = time.perf_counter() - t0
        self._lib = ctypes.CDLL(os.fspath(path))
        self._fn = self._lib.apply_logic_gate_net
        self._fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        self._fn.restype = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=bool)
        if x.ndim != 2 or x.shape[1] != self.circuit.num_inputs or len(x) % 64:
            raise ValueError(f"baseline takes bool [64*m, {self.circuit.num_inputs}]")
        out = np.empty((len(x), self.circuit.head.k), dtype=np.int32)
        self._fn(x.ctypes.data, out.ctypes.data, len(x))
        return out


# ---- the emitted C (lgc.export(circuit, "net.c")), built as a shared library ----

class EmittedC:
    """A circuit's emitted C (:mod:`lgc.backends.c_source`) built by gcc into a shared library and
    called through ctypes, single-threaded: ``__call__(x)`` takes bool [N, num_inputs] (or
    PackedBits) and returns int32 scores [N, k] (uint8 bits [N, O] without a head).
    ``compile_seconds``: emitting the C plus the gcc build. ``flags``: gcc flags (default the
    portable path at -O2; ``("-O2", "-std=gnu11", "-mavx2", "-DVW=4")`` runs the AVX2 kernel)."""

    target = "emitted C"

    def __init__(self, circuit: Circuit, *, flags: tuple[str, ...] = ("-O2",), straight_line: bool | None = None,
                 compiler: str | None = None):
        import tempfile
        from . import c_source
        from .cpu_c import compiler as default_compiler
        cc = compiler or default_compiler()
        if cc is None:
            raise BuildError("no C compiler for the emitted C")
        self.circuit = circuit
        self._dir = tempfile.TemporaryDirectory(prefix="lgc-emitted-")
        c_path = os.path.join(self._dir.name, "net.c")
        lib_path = os.path.join(self._dir.name, "net.so")
        t0 = time.perf_counter()
        src = c_source.emit(circuit, "net", straight_line=straight_line)
        with open(c_path, "w") as f:
            f.write(src.c)
        import subprocess
        std = [] if any(f.startswith("-std=") for f in flags) else ["-std=c99"]
        proc = subprocess.run([cc, *std, *flags, "-shared", "-fPIC", c_path, "-o", lib_path], capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"building the emitted C failed:\n{proc.stderr[-3000:]}")
        self.compile_seconds = time.perf_counter() - t0
        self.source_bytes = len(src.c)
        self._lib = ctypes.CDLL(lib_path)
        self._k = circuit.head.k if circuit.head is not None else 0
        kind = "scores" if self._k else "bits"
        self._run = getattr(self._lib, f"net_{kind}")
        self._run_packed = getattr(self._lib, f"net_{kind}_packed")
        self._run.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]
        self._run_packed.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]
        self._run.restype = self._run_packed.restype = ctypes.c_int
        self._lib.net_workspace_bytes.restype = ctypes.c_size_t
        self._workspace = ctypes.create_string_buffer(self._lib.net_workspace_bytes())  # allocated once

    def __call__(self, x: Any) -> np.ndarray:
        from ..ir import PackedBits
        from ..ir.packed import input_bits
        data = input_bits(self.circuit, x)
        width = self._k or self.circuit.num_outputs
        if isinstance(data, PackedBits):
            n, words = data.n, np.ascontiguousarray(data.words)
            out = np.empty((n, width), dtype=np.int32 if self._k else np.uint8)
            rc = self._run_packed(words.ctypes.data, words.shape[1], n, out.ctypes.data, self._workspace)
        else:
            rows = np.ascontiguousarray(data).view(np.uint8) if data.dtype == bool else np.ascontiguousarray(data, np.uint8)
            n = len(rows)
            out = np.empty((n, width), dtype=np.int32 if self._k else np.uint8)
            rc = self._run(rows.ctypes.data, n, out.ctypes.data, self._workspace)
        if rc != 0:
            raise MemoryError("the emitted C could not allocate its working set")
        return out
