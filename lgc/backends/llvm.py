"""The ``llvm`` target: the table-driven gate kernel written in LLVM IR, JIT-compiled by llvmlite.

The IR is generic (the circuit is data, see :mod:`._schedule`), so it is JIT-compiled once per
process for the host's vector width (``<8 x i64>`` with AVX-512, ``<4 x i64>`` with AVX2, else
``<2 x i64>``) and every circuit reuses it: compile time per circuit is the schedule only.
Input packing and the group-sum readout use lgc.ir's numpy routines (C loops inside numpy),
so this target is slower than ``cpu-avx512``/``cpu-avx2`` on wide nets; it needs no C compiler.
Calls go through ctypes, which releases the GIL, so ``threads=`` splits the tiles across cores.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np

from ..ir import Circuit, PackedBits, packed_input, unpack_bits
from ..ir.simulate import group_sum_words
from ._common import CompiledNet, _pool, cpu_flags, default_threads
from ._schedule import KIND_NAMES, schedule

TARGETS = ("llvm",)


def available(target: str = "llvm") -> str | None:
    try:
        _engine()
    except ImportError:
        return "llvmlite is not installed"
    except Exception as e:  # a JIT that cannot start is "not available", with the reason
        return f"llvmlite cannot JIT here: {type(e).__name__}: {e}"
    return None


def vector_words() -> int:
    flags = cpu_flags()
    return 8 if "avx512f" in flags else 4 if "avx2" in flags else 2


def _op_ir(kind: str, vt: str, ones: str) -> list[str]:
    """IR lines computing %r from %va and %vb for one gate kind."""
    if kind == "FALSE":
        return [f"%r = or {vt} zeroinitializer, zeroinitializer"]
    if kind == "TRUE":
        return [f"%r = or {vt} {ones}, zeroinitializer"]
    table = {
        "COPY": ["%r = or {vt} %va, zeroinitializer"],
        "NOT": ["%r = xor {vt} %va, {ones}"],
        "AND": ["%r = and {vt} %va, %vb"],
        "ANDNOT": ["%nb = xor {vt} %vb, {ones}", "%r = and {vt} %va, %nb"],
        "XOR": ["%r = xor {vt} %va, %vb"],
        "OR": ["%r = or {vt} %va, %vb"],
        "NOR": ["%t = or {vt} %va, %vb", "%r = xor {vt} %t, {ones}"],
        "XNOR": ["%t = xor {vt} %va, %vb", "%r = xor {vt} %t, {ones}"],
        "ORNOT": ["%nb = xor {vt} %vb, {ones}", "%r = or {vt} %va, %nb"],
        "NAND": ["%t = and {vt} %va, %vb", "%r = xor {vt} %t, {ones}"],
    }
    return [line.format(vt=vt, ones=ones) for line in table[kind]]


def kernel_ir(vw: int) -> str:
    """LLVM IR of ``lgc_run``: for each tile, load input words into slots, run every (level,
    kind) group as a loop, store the output slots' words."""
    vt = f"<{vw} x i64>"
    ones = "<" + ", ".join(["i64 -1"] * vw) + ">"
    L = [
        "define void @lgc_run(i64 %n_in, i64 %ngroups, ptr %groups, ptr %gates, i64 %n_out, ptr %outs,",
        "                     ptr %inw, ptr %outw, i64 %wstride, i64 %ntiles, ptr %S) {",
        "entry:", "  br label %tile_head",
        "tile_head:",
        "  %t = phi i64 [0, %entry], [%t_next, %tile_end]",
        "  %tdone = icmp sge i64 %t, %ntiles",
        "  br i1 %tdone, label %exit, label %in_pre",
        "in_pre:", f"  %toff = mul i64 %t, {vw}", "  br label %in_head",
        "in_head:",
        "  %j = phi i64 [0, %in_pre], [%j_next, %in_body]",
        "  %jdone = icmp sge i64 %j, %n_in",
        "  br i1 %jdone, label %grp_pre, label %in_body",
        "in_body:",
        "  %jrow = mul i64 %j, %wstride", "  %jidx = add i64 %jrow, %toff",
        "  %src = getelementptr i64, ptr %inw, i64 %jidx",
        f"  %v = load {vt}, ptr %src, align 8",
        f"  %dst = getelementptr {vt}, ptr %S, i64 %j",
        f"  store {vt} %v, ptr %dst, align 64",
        "  %j_next = add i64 %j, 1", "  br label %in_head",
        "grp_pre:", "  br label %grp_head",
        "grp_head:",
        "  %gi = phi i64 [0, %grp_pre], [%gi_next, %grp_next]",
        "  %gdone = icmp sge i64 %gi, %ngroups",
        "  br i1 %gdone, label %out_pre, label %grp_body",
        "grp_body:",
        "  %g3 = mul i64 %gi, 3",
        "  %pk = getelementptr i32, ptr %groups, i64 %g3", "  %kind = load i32, ptr %pk",
        "  %p0 = getelementptr i32, ptr %pk, i64 1", "  %g0s = load i32, ptr %p0",
        "  %p1 = getelementptr i32, ptr %pk, i64 2", "  %g1s = load i32, ptr %p1",
        "  %g0 = sext i32 %g0s to i64", "  %g1 = sext i32 %g1s to i64",
        "  switch i32 %kind, label %grp_next [" + " ".join(f"i32 {k}, label %k{k}_head" for k in range(len(KIND_NAMES))) + "]",
    ]
    for k, name in enumerate(KIND_NAMES):
        body = [
            f"k{k}_head:",
            f"  %k{k}_i = phi i64 [%g0, %grp_body], [%k{k}_inext, %k{k}_body]",
            f"  %k{k}_done = icmp sge i64 %k{k}_i, %g1",
            f"  br i1 %k{k}_done, label %grp_next, label %k{k}_body",
            f"k{k}_body:",
            f"  %k{k}_i3 = mul i64 %k{k}_i, 3",
            f"  %k{k}_pa = getelementptr i32, ptr %gates, i64 %k{k}_i3",
            f"  %k{k}_pb = getelementptr i32, ptr %k{k}_pa, i64 1",
            f"  %k{k}_po = getelementptr i32, ptr %k{k}_pa, i64 2",
            f"  %k{k}_a32 = load i32, ptr %k{k}_pa", f"  %k{k}_b32 = load i32, ptr %k{k}_pb",
            f"  %k{k}_o32 = load i32, ptr %k{k}_po",
            f"  %k{k}_a = sext i32 %k{k}_a32 to i64", f"  %k{k}_b = sext i32 %k{k}_b32 to i64",
            f"  %k{k}_o = sext i32 %k{k}_o32 to i64",
            f"  %k{k}_sa = getelementptr {vt}, ptr %S, i64 %k{k}_a",
            f"  %k{k}_sb = getelementptr {vt}, ptr %S, i64 %k{k}_b",
            f"  %k{k}_so = getelementptr {vt}, ptr %S, i64 %k{k}_o",
            f"  %k{k}_va = load {vt}, ptr %k{k}_sa, align 64",
            f"  %k{k}_vb = load {vt}, ptr %k{k}_sb, align 64",
        ]
        for line in _op_ir(name, vt, ones):
            line = line.replace("%va", f"%k{k}_va").replace("%vb", f"%k{k}_vb").replace("%nb", f"%k{k}_nb")
            line = line.replace("%t ", f"%k{k}_t ").replace("%t,", f"%k{k}_t,").replace("%r ", f"%k{k}_r ")
            body.append("  " + line)
        body += [f"  store {vt} %k{k}_r, ptr %k{k}_so, align 64",
                 f"  %k{k}_inext = add i64 %k{k}_i, 1", f"  br label %k{k}_head"]
        L += body
    L += [
        "grp_next:", "  %gi_next = add i64 %gi, 1", "  br label %grp_head",
        "out_pre:", "  br label %out_head",
        "out_head:",
        "  %o = phi i64 [0, %out_pre], [%o_next, %out_body]",
        "  %odone = icmp sge i64 %o, %n_out",
        "  br i1 %odone, label %tile_end, label %out_body",
        "out_body:",
        "  %po32 = getelementptr i32, ptr %outs, i64 %o", "  %os32 = load i32, ptr %po32",
        "  %os = sext i32 %os32 to i64",
        f"  %so = getelementptr {vt}, ptr %S, i64 %os", f"  %vo = load {vt}, ptr %so, align 64",
        "  %orow = mul i64 %o, %wstride", "  %oidx = add i64 %orow, %toff",
        "  %odst = getelementptr i64, ptr %outw, i64 %oidx",
        f"  store {vt} %vo, ptr %odst, align 8",
        "  %o_next = add i64 %o, 1", "  br label %out_head",
        "tile_end:", "  %t_next = add i64 %t, 1", "  br label %tile_head",
        "exit:", "  ret void", "}",
    ]
    return "\n".join(L) + "\n"


_ARGTYPES = [ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
             ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]


@functools.lru_cache(maxsize=None)
def _engine():
    """(engine, ctypes function, vector words): the kernel JIT-compiled once per process."""
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    vw = vector_words()
    target = llvm.Target.from_default_triple()
    tm = target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
                                      opt=3)
    mod = llvm.parse_assembly(kernel_ir(vw))
    mod.verify()
    try:
        pto = llvm.create_pipeline_tuning_options(speed_level=3)
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
    except AttributeError:  # older llvmlite: the backend's codegen optimisation (opt=3) still applies
        pass
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    fn = ctypes.CFUNCTYPE(None, *_ARGTYPES)(engine.get_function_address("lgc_run"))
    return engine, fn, vw


class LLVMNet(CompiledNet):
    target = "llvm"

    def __init__(self, circuit: Circuit, *, threads: int | None = None):
        super().__init__(circuit, threads=threads)
        self._engine, self._fn, self.vector_words = _engine()
        self.schedule = schedule(self.circuit)

    def __call__(self, x) -> np.ndarray:
        c, s, vw = self.circuit, self.schedule, self.vector_words
        packed = packed_input(c, x)
        n = packed.n
        if n == 0 or c.num_outputs == 0:
            return np.zeros((n, c.head.k), dtype=np.int32) if c.head is not None \
                else np.zeros((n, c.num_outputs), dtype=np.uint8)
        w = packed.words.shape[1]
        ntiles = -(-w // vw)
        inw = np.zeros((c.num_inputs, ntiles * vw), dtype=np.uint64)
        inw[:, :w] = packed.words
        outw = np.empty((c.num_outputs, ntiles * vw), dtype=np.uint64)
        threads = min(self.threads or default_threads(), ntiles)
        per = -(-ntiles // threads)
        spans = [(lo, min(ntiles, lo + per)) for lo in range(0, ntiles, per)]
        # slots are read as aligned vectors: allocate with room to align to 64 bytes
        buffers = [_aligned(max(s.num_slots, 1) * vw) for _ in spans]

        def run(i: int) -> None:
            lo, hi = spans[i]
            self._fn(s.num_inputs, len(s.groups), s.groups.ctypes.data, s.gates.ctypes.data, len(s.out_slots),
                     s.out_slots.ctypes.data, inw.ctypes.data + lo * vw * 8, outw.ctypes.data + lo * vw * 8,
                     ntiles * vw, hi - lo, buffers[i].ctypes.data)

        if len(spans) == 1:
            run(0)
        else:
            list(_pool(len(spans)).map(run, range(len(spans))))
        out = np.ascontiguousarray(outw[:, :w])
        if n % 64:
            out[:, -1] &= np.uint64((1 << (n % 64)) - 1)
        if c.head is not None:
            return group_sum_words(out, n, c.head.k)
        return unpack_bits(PackedBits(out, n))


def _aligned(words: int) -> np.ndarray:
    raw = np.empty(words + 8, dtype=np.uint64)
    skip = (-raw.ctypes.data % 64) // 8
    return raw[skip:skip + words]


def build(circuit: Circuit, target: str = "llvm", *, threads: int | None = None) -> LLVMNet:
    return LLVMNet(circuit, threads=threads)
