"""The ``llvm`` target: the table-driven gate kernel written in LLVM IR, JIT-compiled by llvmlite.

The IR is generic (the circuit is data, see :mod:`._schedule`), so it is JIT-compiled once per
process for the host's vector width (``<8 x i64>`` with AVX-512, ``<4 x i64>`` with AVX2, else
``<2 x i64>``) and every circuit reuses it: compile time per circuit is the schedule only.
Packing (8x8 shift-or; any nonzero bool byte is True) and the group-sum readout (a bit-sliced
ripple counter) are in the IR too, simpler than the C kernel's, so this target is slower than
``cpu-avx512``/``cpu-avx2``; it needs no C compiler.
Calls go through ctypes, which releases the GIL, so ``threads=`` splits the tiles across cores.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np

from ..ir import Circuit, PackedBits, input_bits, unpack_bits
from ._common import FastNet, cpu_flags
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


class _Emitter:
    """Just enough of an IR text builder: fresh names, blocks, counted loops. Loop-carried
    values other than the counter live in allocas (promoted to registers by LLVM's passes)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.allocas: list[str] = []
        self.count = 0
        self.block = "entry"

    def fresh(self, stem: str = "v") -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def __call__(self, text: str) -> str:
        """Emit ``%name = text`` and return ``%name``."""
        name = "%" + self.fresh()
        self.lines.append(f"  {name} = {text}")
        return name

    def raw(self, text: str) -> None:
        self.lines.append("  " + text)

    def label(self, name: str) -> None:
        self.lines.append(f"{name}:")
        self.block = name

    def alloca(self, ty: str) -> str:
        name = "%" + self.fresh("slot")
        self.allocas.append(f"  {name} = alloca {ty}, align 64")
        return name

    def loop(self, start: str, end: str, body) -> None:
        """for (i = start; i < end; i++) body(i)"""
        L = self.fresh("L")
        pre = self.block
        self.raw(f"br label %{L}_head")
        self.label(f"{L}_head")
        i = f"%{L}_i"
        self.raw(f"{i} = phi i64 [{start}, %{pre}], [%{L}_next, %{L}_latch]")
        self.raw(f"%{L}_c = icmp slt i64 {i}, {end}")
        self.raw(f"br i1 %{L}_c, label %{L}_body, label %{L}_exit")
        self.label(f"{L}_body")
        body(i)
        self.raw(f"br label %{L}_latch")
        self.label(f"{L}_latch")
        self.raw(f"%{L}_next = add i64 {i}, 1")
        self.raw(f"br label %{L}_head")
        self.label(f"{L}_exit")


_GATE_IR = {  # kind -> expression lines over %A, %B giving the last value
    "FALSE": ["or {vt} zeroinitializer, zeroinitializer"],
    "TRUE": ["or {vt} {ones}, zeroinitializer"],
    "COPY": ["or {vt} %A, zeroinitializer"],
    "NOT": ["xor {vt} %A, {ones}"],
    "AND": ["and {vt} %A, %B"],
    "ANDNOT": ["xor {vt} %B, {ones}", "and {vt} %A, %P"],
    "XOR": ["xor {vt} %A, %B"],
    "OR": ["or {vt} %A, %B"],
    "NOR": ["or {vt} %A, %B", "xor {vt} %P, {ones}"],
    "XNOR": ["xor {vt} %A, %B", "xor {vt} %P, {ones}"],
    "ORNOT": ["xor {vt} %B, {ones}", "or {vt} %A, %P"],
    "NAND": ["and {vt} %A, %B", "xor {vt} %P, {ones}"],
}


def kernel_ir(vw: int) -> str:
    """LLVM IR of ``lgc_run``, the whole pipeline per tile of 64*vw samples: pack bool rows into
    input slots (8x8 shift-or), run every (level, kind) group as a loop, then count each class's
    group with a bit-sliced ripple counter (or write the output bits)."""
    vt = f"<{vw} x i64>"
    sb = vw * 8  # bytes per slot
    tile = 64 * vw
    ones = "<" + ", ".join(["i64 -1"] * vw) + ">"
    e = _Emitter()
    planes = e.alloca(f"[64 x {vt}]")
    seen = e.alloca("i64")  # OR of a tile's 8-byte loads: a bit outside 0x01 per byte = non-canonical
    carry = e.alloca(vt)
    acc = e.alloca("i64")
    ntiles = e(f"add i64 %n, {tile - 1}")
    ntiles = e(f"sdiv i64 {ntiles}, {tile}")

    def slot_ptr(idx: str) -> str:
        return e(f"getelementptr {vt}, ptr %S, i64 {idx}")

    def load_index(base: str, offset: str | int) -> str:
        """sext(load i32 base[offset]) as i64"""
        p = e(f"getelementptr i32, ptr {base}, i64 {offset}")
        v = e(f"load i32, ptr {p}")
        return e(f"sext i32 {v} to i64")

    def tile_body(t: str) -> None:
        row0 = e(f"mul i64 {t}, {tile}")
        left = e(f"sub i64 %n, {row0}")
        small = e(f"icmp slt i64 {left}, {tile}")
        nrows = e(f"select i1 {small}, i64 {left}, i64 {tile}")

        def pack_group(g: str, normalize: bool) -> None:  # 8 samples 8g .. 8g+7
            rows = []
            for s_ in range(8):
                r = e(f"mul i64 {g}, 8")
                r = e(f"add i64 {r}, {s_}")
                live = e(f"icmp slt i64 {r}, {nrows}")
                absr = e(f"add i64 {r}, {row0}")
                off = e(f"mul i64 {absr}, %n_in")
                p = e(f"getelementptr i8, ptr %x, i64 {off}")
                rows.append(e(f"select i1 {live}, ptr {p}, ptr %zero_row"))
            nfull = e("sdiv i64 %n_in, 8")

            def full(q: str) -> None:
                j = e(f"mul i64 {q}, 8")
                tv = None
                for s_, r in enumerate(rows):
                    p = e(f"getelementptr i8, ptr {r}, i64 {j}")
                    if normalize:  # any nonzero bool byte is True (.view(bool) gives 0xFF)
                        v = e(f"load <8 x i8>, ptr {p}, align 1")
                        v = e(f"icmp ne <8 x i8> {v}, zeroinitializer")
                        v = e(f"zext <8 x i1> {v} to <8 x i8>")
                        v = e(f"bitcast <8 x i8> {v} to i64")
                    else:  # 0/1 bytes cannot carry; seen tells whether they all were
                        v = e(f"load i64, ptr {p}, align 1")
                        so_far = e(f"load i64, ptr {seen}, align 8")
                        e.raw(f"store i64 {e(f'or i64 {so_far}, {v}')}, ptr {seen}, align 8")
                    if s_:
                        v = e(f"shl i64 {v}, {s_}")
                    tv = v if tv is None else e(f"or i64 {tv}, {v}")
                for i in range(8):
                    byte = e(f"lshr i64 {tv}, {8 * i}") if i else tv
                    byte = e(f"trunc i64 {byte} to i8")
                    col = e(f"add i64 {j}, {i}")
                    off = e(f"mul i64 {col}, {sb}")
                    off = e(f"add i64 {off}, {g}")
                    e.raw(f"store i8 {byte}, ptr {e(f'getelementptr i8, ptr %S, i64 {off}')}, align 1")

            e.loop("0", nfull, full)
            jstart = e(f"mul i64 {nfull}, 8")

            def tail(j: str) -> None:
                tv = None
                for s_, r in enumerate(rows):
                    v = e(f"load i8, ptr {e(f'getelementptr i8, ptr {r}, i64 {j}')}, align 1")
                    v = e(f"zext i1 {e(f'icmp ne i8 {v}, 0')} to i8")
                    if s_:
                        v = e(f"shl i8 {v}, {s_}")
                    tv = v if tv is None else e(f"or i8 {tv}, {v}")
                off = e(f"mul i64 {j}, {sb}")
                off = e(f"add i64 {off}, {g}")
                e.raw(f"store i8 {tv}, ptr {e(f'getelementptr i8, ptr %S, i64 {off}')}, align 1")

            e.loop(jstart, "%n_in", tail)

        # the shift-or is exact for 0/1 bytes; a tile holding any other byte (a non-canonical bool
        # array) is packed again with every byte normalised, so the canonical path pays one OR per load
        e.raw(f"store i64 0, ptr {seen}, align 8")
        e.loop("0", str(tile // 8), lambda g: pack_group(g, False))
        odd = e(f"load i64, ptr {seen}, align 8")
        odd = e(f"and i64 {odd}, {0xFEFEFEFEFEFEFEFE - (1 << 64)}")
        redo, packed = e.fresh("renorm"), e.fresh("packed")
        e.raw(f"br i1 {e(f'icmp ne i64 {odd}, 0')}, label %{redo}, label %{packed}")
        e.label(redo)
        e.loop("0", str(tile // 8), lambda g: pack_group(g, True))
        e.raw(f"br label %{packed}")
        e.label(packed)

        def group_body(gi: str) -> None:
            g3 = e(f"mul i64 {gi}, 3")
            pk = e(f"getelementptr i32, ptr %groups, i64 {g3}")
            kind = e(f"load i32, ptr {pk}")
            g0 = load_index(pk, 1)
            g1 = load_index(pk, 2)
            join = e.fresh("join")
            kinds = [e.fresh("kind") for _ in KIND_NAMES]
            e.raw(f"switch i32 {kind}, label %{join} [" + " ".join(f"i32 {k}, label %{b}" for k, b in enumerate(kinds)) + "]")
            for name, block in zip(KIND_NAMES, kinds):
                e.label(block)

                def gate(i: str, name: str = name) -> None:
                    i3 = e(f"mul i64 {i}, 3")
                    pa = e(f"getelementptr i32, ptr %gates, i64 {i3}")
                    a = e(f"sext i32 {e(f'load i32, ptr {pa}')} to i64")
                    b = load_index(pa, 1)
                    o = load_index(pa, 2)
                    va = e(f"load {vt}, ptr {slot_ptr(a)}, align 64")
                    vb = e(f"load {vt}, ptr {slot_ptr(b)}, align 64")
                    prev = None
                    for line in _GATE_IR[name]:
                        text = line.format(vt=vt, ones=ones).replace("%A", va).replace("%B", vb)
                        if prev is not None:
                            text = text.replace("%P", prev)
                        prev = e(text)
                    e.raw(f"store {vt} {prev}, ptr {slot_ptr(o)}, align 64")

                e.loop(g0, g1, gate)
                e.raw(f"br label %{join}")
            e.label(join)

        e.loop("0", "%ngroups", group_body)

        head = e.fresh("head")
        nohead = e.fresh("nohead")
        done = e.fresh("tiledone")
        has_head = e("icmp sgt i64 %k, 0")
        e.raw(f"br i1 {has_head}, label %{head}, label %{nohead}")
        e.label(head)

        def count_class(c: str) -> None:
            e.loop("0", "%nplanes", lambda p: e.raw(
                f"store {vt} zeroinitializer, ptr {e(f'getelementptr {vt}, ptr {planes}, i64 {p}')}, align 64"))
            base = e("mul i64 %group, " + c)

            def add_output(o: str) -> None:
                idx = e(f"add i64 {base}, {o}")
                slot = load_index("%outs", idx)
                e.raw(f"store {vt} {e(f'load {vt}, ptr {slot_ptr(slot)}, align 64')}, ptr {carry}, align 64")

                def ripple(p: str) -> None:
                    pp = e(f"getelementptr {vt}, ptr {planes}, i64 {p}")
                    pv = e(f"load {vt}, ptr {pp}, align 64")
                    cv = e(f"load {vt}, ptr {carry}, align 64")
                    e.raw(f"store {vt} {e(f'xor {vt} {pv}, {cv}')}, ptr {pp}, align 64")
                    e.raw(f"store {vt} {e(f'and {vt} {pv}, {cv}')}, ptr {carry}, align 64")

                e.loop("0", "%nplanes", ripple)

            e.loop("0", "%group", add_output)

            def extract(s_: str) -> None:
                e.raw(f"store i64 0, ptr {acc}, align 8")
                word = e(f"lshr i64 {s_}, 6")
                sh = e(f"and i64 {s_}, 63")

                def plane_bit(p: str) -> None:
                    off = e(f"mul i64 {p}, {vw}")
                    off = e(f"add i64 {off}, {word}")
                    w = e(f"load i64, ptr {e(f'getelementptr i64, ptr {planes}, i64 {off}')}, align 8")
                    shifted = e(f"lshr i64 {w}, {sh}")
                    bit = e(f"and i64 {shifted}, 1")
                    a0 = e(f"load i64, ptr {acc}, align 8")
                    shifted = e(f"shl i64 {bit}, {p}")
                    e.raw(f"store i64 {e(f'add i64 {a0}, {shifted}')}, ptr {acc}, align 8")

                e.loop("0", "%nplanes", plane_bit)
                row = e(f"add i64 {row0}, {s_}")
                dst = e(f"add i64 {e(f'mul i64 {row}, %k')}, {c}")
                val = e(f"trunc i64 {e(f'load i64, ptr {acc}, align 8')} to i32")
                e.raw(f"store i32 {val}, ptr {e(f'getelementptr i32, ptr %scores, i64 {dst}')}, align 4")

            e.loop("0", nrows, extract)

        e.loop("0", "%k", count_class)
        e.raw(f"br label %{done}")
        e.label(nohead)

        def write_bits(s_: str) -> None:
            word = e(f"lshr i64 {s_}, 6")
            sh = e(f"and i64 {s_}, 63")
            row = e(f"add i64 {row0}, {s_}")
            rbase = e(f"mul i64 {row}, %n_out")

            def one(o: str) -> None:
                slot = load_index("%outs", o)
                off = e(f"add i64 {e(f'mul i64 {slot}, {vw}')}, {word}")
                w = e(f"load i64, ptr {e(f'getelementptr i64, ptr %S, i64 {off}')}, align 8")
                shifted = e(f"lshr i64 {w}, {sh}")
                bit = e(f"trunc i64 {e(f'and i64 {shifted}, 1')} to i8")
                at = e(f"add i64 {rbase}, {o}")
                e.raw(f"store i8 {bit}, ptr {e(f'getelementptr i8, ptr %bits, i64 {at}')}, align 1")

            e.loop("0", "%n_out", one)

        e.loop("0", nrows, write_bits)
        e.raw(f"br label %{done}")
        e.label(done)

    e.loop("0", ntiles, tile_body)
    e.raw("ret void")
    header = ("define void @lgc_run(i64 %n_in, i64 %ngroups, ptr %groups, ptr %gates, i64 %n_out, ptr %outs, "
              "i64 %k, i64 %group, i64 %nplanes, ptr %x, i64 %n, ptr %zero_row, ptr %scores, ptr %bits, ptr %S) {")
    return "\n".join([header, "entry:", *e.allocas, *e.lines, "}"]) + "\n"


_I64, _PTR = ctypes.c_int64, ctypes.c_void_p
_ARGTYPES = [_I64, _I64, _PTR, _PTR, _I64, _PTR, _I64, _I64, _I64, _PTR, _I64, _PTR, _PTR, _PTR, _PTR]


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


class LLVMNet(FastNet):
    """A circuit run by the JIT-compiled LLVM kernel."""

    target = "llvm"

    def __init__(self, circuit: Circuit, *, threads: int | None = None):
        super().__init__(circuit, threads=threads)
        self._engine, self._fn, self.vector_words = _engine()
        self.tile = 64 * self.vector_words
        self.schedule = schedule(self.circuit)
        head = self.circuit.head
        self._group = self.circuit.num_outputs // head.k if head is not None else 0
        self._planes = max(1, int(self._group).bit_length())
        self._zero_row = np.zeros(self.circuit.num_inputs + 8, dtype=np.uint8)

    def __call__(self, x) -> np.ndarray:
        if isinstance(x, PackedBits):  # the kernel packs bool rows itself
            x = unpack_bits(input_bits(self.circuit, x)).view(bool)
        return super().__call__(x)

    def _run_chunk(self, x, packed, wstride, n, scores, bits) -> None:
        s = self.schedule
        k = self.circuit.head.k if self.circuit.head is not None else 0
        slots = _aligned(max(s.num_slots, 1) * self.vector_words)
        self._fn(s.num_inputs, len(s.groups), s.groups.ctypes.data, s.gates.ctypes.data, len(s.out_slots),
                 s.out_slots.ctypes.data, k, self._group, self._planes, x.ctypes.data, n,
                 self._zero_row.ctypes.data, scores.ctypes.data if k else None,
                 bits.ctypes.data if not k else None, slots.ctypes.data)


def _aligned(words: int) -> np.ndarray:
    raw = np.empty(words + 8, dtype=np.uint64)
    skip = (-raw.ctypes.data % 64) // 8
    return raw[skip:skip + words]


def build(circuit: Circuit, target: str = "llvm", *, threads: int | None = None) -> LLVMNet:
    return LLVMNet(circuit, threads=threads)
