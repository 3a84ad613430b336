"""The ``llvm`` target: the C kernel's schedule and algorithm as LLVM IR, JIT-compiled by llvmlite.

The IR (:mod:`._llvm_ir`) is generic — the circuit is data (:mod:`._schedule`) — so it is
JIT-compiled once per process for the host (``<8 x i64>`` slots with AVX-512, ``<4 x i64>`` with
AVX2, else ``<2 x i64>``; single-reader gate pairs fused into 3-input gates, one ``vpternlogq``
with AVX-512) and every circuit reuses it: a build costs the schedule only. The machine code is
cached on disk by content (a cold JIT takes a few seconds, like the C kernel's gcc build). No C
compiler is needed at run time. Calls go through ctypes, which releases the GIL, so ``threads=``
splits a batch across cores. ``lgc.export`` writes the same IR, with the
circuit's tables as constant data, as ``.ll`` text or an object file for any LLVM target.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np

from .._atomic import write_atomic
from .._build import cache_dir, content_key
from ..ir import Circuit
from ._common import FastNet, cpu_flags
from ._llvm_ir import NET_FIELDS, Spec, kernel_module, workspace_bytes
from ._schedule import Readout, Schedule, readout_schedule, schedule

TARGETS = ("llvm",)


def available(target: str = "llvm") -> str | None:
    try:
        _probe()
    except ImportError:
        return "llvmlite is not installed"
    except Exception as e:  # a JIT that cannot start is "not available", with the reason
        return f"llvmlite cannot JIT here: {type(e).__name__}: {e}"
    return None


def host_spec() -> Spec:
    """The kernel parameters for this host's CPU (from /proc/cpuinfo)."""
    flags = cpu_flags()
    if "avx512f" in flags:
        return Spec(8, ternary=True, ternlog=True)
    # fused 3-input gates without vpternlogq (two 2-input gates and a mux) still save a slot's
    # store and load per pair: measured 4-8% faster on the 48K net with AVX2
    return Spec(4 if "avx2" in flags else 2, ternary=True)


def vector_words() -> int:
    return host_spec().vector_words


def initialize_llvm():
    """llvmlite's binding with the native target and asm printer registered (idempotent)."""
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm


def optimize_module(llvm, module, target_machine, speed: int = 3) -> None:
    """Run LLVM's -O``speed`` pipeline on ``module`` for ``target_machine``."""
    pto = llvm.create_pipeline_tuning_options(speed_level=speed)
    pb = llvm.create_pass_builder(target_machine, pto)
    pb.getModulePassManager().run(module, pb)


@functools.lru_cache(maxsize=None)
def _probe() -> None:
    """JIT a trivial function: cheap proof that llvmlite works here (the kernel is built on first use)."""
    llvm = initialize_llvm()
    tm = llvm.Target.from_default_triple().create_target_machine()
    mod = llvm.parse_assembly("define i32 @probe() {\n  ret i32 1\n}\n")
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    if ctypes.CFUNCTYPE(ctypes.c_int32)(engine.get_function_address("probe"))() != 1:
        raise RuntimeError("a JIT-compiled function returned the wrong value")


@functools.lru_cache(maxsize=None)
def _engine():
    """(engine, ctypes function, spec): the kernel JIT-compiled once per process."""
    llvm = initialize_llvm()
    spec = host_spec()
    target = llvm.Target.from_default_triple()
    cpu, features = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
    tm = target.create_target_machine(cpu=cpu, features=features, opt=3)
    text = kernel_module(spec, triple=llvm.get_process_triple(), datalayout=str(tm.target_data))
    # the machine code is cached on disk by content (optimising and code generation take seconds)
    key = content_key(text, cpu, features, ".".join(map(str, llvm.llvm_version_info)))
    try:
        cached = cache_dir() / "llvm" / f"kernel-{key}.o"
        hit = cached.read_bytes() if cached.exists() else None
    except OSError:  # no usable cache directory: compile every time
        cached, hit = None, None
    mod = llvm.parse_assembly(text)
    mod.verify()
    if hit is None:
        optimize_module(llvm, mod, tm)
    engine = llvm.create_mcjit_compiler(mod, tm)
    if cached is not None:
        engine.set_object_cache(lambda _module, obj: hit is None and _store(cached, obj), lambda _module: hit)
    engine.finalize_object()
    fn = ctypes.CFUNCTYPE(ctypes.c_int32, *[ctypes.c_void_p] * 3, ctypes.c_int64, ctypes.c_int64,
                          *[ctypes.c_void_p] * 3)(engine.get_function_address("lgc_run"))
    return engine, fn, spec


def _store(path, data: bytes) -> None:
    """Write the JIT's object atomically; a cache that cannot be written is only slower."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
    except OSError:
        pass


class NetTables(ctypes.Structure):
    """``%lgc_net`` for a 64-bit host: the circuit's table sizes and pointers."""

    _fields_ = [(name, ctypes.c_void_p if is_ptr else ctypes.c_int64) for name, is_ptr in NET_FIELDS]


def kernel_tables(circuit: Circuit, spec: Spec) -> tuple[Schedule, Readout | None, dict[str, np.ndarray | int]]:
    """The schedule (and readout) the kernel runs for ``circuit`` and every ``%lgc_net`` field:
    int32 arrays for the tables (never empty), ints for the sizes. ``n_slots`` covers the packing
    too (64 ceil(n_in / 64) slots)."""
    if circuit.head is not None:
        sched, readout = readout_schedule(circuit, fuse=spec.ternary, inline=True)
    else:
        sched, readout = schedule(circuit), None

    def table(arr: np.ndarray | None, width: int) -> np.ndarray:
        arr = np.zeros((0, width), np.int32) if arr is None else np.asarray(arr, np.int32).reshape(-1, width)
        return np.ascontiguousarray(arr if len(arr) else np.zeros((1, width), np.int32))

    r = readout
    fields: dict[str, np.ndarray | int] = {
        "n_in": sched.num_inputs, "n_slots": max(sched.num_slots, 64 * -(-sched.num_inputs // 64), 1),
        "ngroups": len(sched.groups), "groups": table(sched.groups, 3), "gates": table(sched.gates, 3),
        "tgates": table(sched.tgates, 4), "n_out": len(sched.out_slots), "out_slots": table(sched.out_slots, 1),
        "k": circuit.head.k if circuit.head is not None else 0,
        "nterms": len(r.terms) if r else 0, "terms": table(r.terms if r else None, 7),
        "term_slots": table(r.term_slots if r else None, 1),
        "nterm_groups": len(r.term_groups) if r else 0, "term_groups": table(r.term_groups if r else None, 3),
        "term_gates": table(r.term_gates if r else None, 4), "consts": table(r.consts if r else None, 1),
        "nv": max(1, int(r.terms[:, 6].max()) if r is not None and len(r.terms) else 1),
    }
    return sched, readout, fields


class LLVMNet(FastNet):
    """A circuit run by the JIT-compiled LLVM kernel."""

    target = "llvm"

    def __init__(self, circuit: Circuit, *, threads: int | None = None):
        super().__init__(circuit, threads=threads)
        self._engine, self._fn, spec = _engine()
        self.vector_words = spec.vector_words
        self.tile = spec.tile
        self.schedule, self.readout, fields = kernel_tables(self.circuit, spec)
        self._arrays = {k: v for k, v in fields.items() if isinstance(v, np.ndarray)}  # kept alive
        self._tables = NetTables(**{k: (v.ctypes.data if isinstance(v, np.ndarray) else v) for k, v in fields.items()})
        self._workspace = workspace_bytes(spec, fields["n_in"], fields["n_slots"], fields["nv"], fields["k"])

    def _run_chunk(self, x, packed, wstride, n, scores, bits) -> None:
        ws = np.empty(self._workspace, dtype=np.uint8)  # per call: threads run chunks at once
        self._fn(ctypes.addressof(self._tables), None if x is None else x.ctypes.data,
                 None if packed is None else packed.ctypes.data, wstride, n,
                 None if scores is None else scores.ctypes.data, None if bits is None else bits.ctypes.data,
                 ws.ctypes.data)


def build(circuit: Circuit, target: str = "llvm", *, threads: int | None = None) -> LLVMNet:
    return LLVMNet(circuit, threads=threads)
