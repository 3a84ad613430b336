"""The table-driven CPU kernel of ``cpu_kernel.c`` as LLVM IR text, one emitter per concern.

The circuit is data (:mod:`._schedule`: slots, (level, kind) groups, 3-input gates where the
target has ``vpternlogq``, head gates computed by the readout, the weighted bit-sliced readout),
so the IR is generic: the ``llvm`` JIT backend builds it once per process and ``lgc.export``
(``.ll``/``.o``) builds it once per file, with the circuit's tables as constant data. Each
``_emit_*`` function below writes one LLVM function; :func:`kernel_module` puts them together.

Per tile of ``64 * vector_words`` samples: bool rows become one 64-bit mask per 64 inputs
(``icmp ne <64 x i8>``: any nonzero byte is True) and every 64 x 64 bit block is transposed into
input slots (6 shift-xor stages on whole vectors); or packed words are copied in. Then the gate
groups run as branch-free loops over their table rows; the head gates fill a value buffer; each
popcount term is a Harley-Seal carry-save count, the terms of a class are added bit-sliced in
two's complement and turned into int32 once per class (``add_planes``).

Target parameters (:class:`Spec`): the vector width (``<vw x i64>`` slots, any vw >= 1), the
index width (i64, or i32 on 32-bit targets: ``size_t``), and whether 3-input gates exist
(AVX-512 ``vpternlogq``). Little-endian targets only (the readout reads plane bits as bytes).
Cost: emitting is O(1) for the kernel; the tables are O(gates) text.
"""
from __future__ import annotations

import dataclasses
import itertools
import threading
from typing import Callable

from ._schedule import KIND_NAMES


@dataclasses.dataclass(frozen=True)
class Spec:
    """What the kernel is specialised for. ``vector_words``: uint64 words per slot (a tile is
    ``64 * vector_words`` samples); ``index_bits``: 64 or 32 (the target's ``size_t``);
    ``ternary``: run fused 3-input gates with AVX-512 ``vpternlogq`` (needs vector_words 8)."""

    vector_words: int
    index_bits: int = 64
    ternary: bool = False
    #: 3-input gates as AVX-512 ``vpternlogq`` (else as a 2-input gate of b, c per value of a, muxed by a)
    ternlog: bool = False

    def __post_init__(self) -> None:
        if self.vector_words < 1 or self.vector_words & (self.vector_words - 1):
            raise ValueError(f"vector_words must be a power of two >= 1, got {self.vector_words}")
        if self.index_bits not in (32, 64):
            raise ValueError(f"index_bits must be 32 or 64, got {self.index_bits}")
        if self.ternlog and (self.vector_words != 8 or not self.ternary):
            raise ValueError("vpternlogq (ternlog) needs vector_words=8 and ternary=True")

    @property
    def V(self) -> str:
        return f"<{self.vector_words} x i64>"

    @property
    def I(self) -> str:  # noqa: E743 - the index type, as in LLVM's own naming
        return f"i{self.index_bits}"

    @property
    def tile(self) -> int:
        return 64 * self.vector_words

    @property
    def vbytes(self) -> int:
        return 8 * self.vector_words

    def splat(self, value: int) -> str:
        """A constant vector with every i64 lane equal to ``value``."""
        return "<" + ", ".join([f"i64 {value}"] * self.vector_words) + ">"

    @property
    def ones(self) -> str:
        return self.splat(-1)


#: fields of the circuit-table struct every kernel function reads (``%lgc_net``): name -> is a pointer
NET_FIELDS = (("n_in", False), ("n_slots", False), ("ngroups", False), ("groups", True), ("gates", True),
              ("tgates", True), ("n_out", False), ("out_slots", True), ("k", False), ("nterms", False),
              ("terms", True), ("term_slots", True), ("nterm_groups", False), ("term_groups", True),
              ("term_gates", True), ("consts", True), ("nv", False))
_FIELD = {name: i for i, (name, _) in enumerate(NET_FIELDS)}


def net_type(spec: Spec) -> str:
    return "%lgc_net = type { " + ", ".join("ptr" if p else spec.I for _, p in NET_FIELDS) + " }"


#: metadata node numbers (step 3: a loop's id and its two properties; low numbers are left to
#: module flags), restarted by each kernel_module so equal kernels have equal text (the JIT cache key)
_METADATA_IDS = itertools.count(1000, 3)
_EMITTING = threading.Lock()


class Fn:
    """One LLVM function being written: fresh value names, blocks, counted and while loops.
    Values carried around a loop (other than its counter) live in allocas, which LLVM's
    mem2reg/SROA turn into registers."""

    def __init__(self, spec: Spec, name: str, params: str, ret: str = "void", linkage: str = "internal",
                 attrs: str = "#1") -> None:
        self.spec, self.name, self.params, self.ret, self.linkage, self.attrs = spec, name, params, ret, linkage, attrs
        self.lines: list[str] = []
        self.allocas: list[str] = []
        self.metadata: list[str] = []
        self.count = 0
        self.block = "entry"

    def fresh(self, stem: str = "t") -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def __call__(self, text: str) -> str:
        """Emit ``%name = text``; return ``%name``."""
        name = "%" + self.fresh()
        self.lines.append(f"  {name} = {text}")
        return name

    def do(self, text: str) -> None:
        self.lines.append("  " + text)

    def label(self, name: str) -> None:
        self.lines.append(f"{name}:")
        self.block = name

    def alloca(self, ty: str, init: str | None = None) -> str:
        name = "%" + self.fresh("var")
        self.allocas.append(f"  {name} = alloca {ty}, align 64")
        if init is not None:
            self.do(f"store {ty} {init}, ptr {name}")
        return name

    def loop(self, start: str, end: str, body: Callable[[str], None], step: int = 1, unroll: bool = True) -> None:
        """``for (i = start; i < end; i += step) body(i)`` over the index type; ``unroll=False``
        tells LLVM not to unroll or vectorise it (for the many small loops of rare kinds)."""
        I = self.spec.I
        L = self.fresh("L")
        pre = self.block
        self.do(f"br label %{L}.head")
        self.label(f"{L}.head")
        i = f"%{L}.i"
        self.do(f"{i} = phi {I} [{start}, %{pre}], [%{L}.next, %{L}.latch]")
        self.do(f"%{L}.c = icmp slt {I} {i}, {end}")
        self.do(f"br i1 %{L}.c, label %{L}.body, label %{L}.exit")
        self.label(f"{L}.body")
        body(i)
        self.do(f"br label %{L}.latch")
        self.label(f"{L}.latch")
        self.do(f"%{L}.next = add {I} {i}, {step}")
        if unroll:
            self.do(f"br label %{L}.head")
        else:
            md = next(_METADATA_IDS)
            self.metadata.append(f"!{md} = distinct !{{!{md}, !{md + 1}, !{md + 2}}}\n"
                                 f'!{md + 1} = !{{!"llvm.loop.unroll.disable"}}\n'
                                 f'!{md + 2} = !{{!"llvm.loop.vectorize.enable", i1 false}}')
            self.do(f"br label %{L}.head, !llvm.loop !{md}")
        self.label(f"{L}.exit")

    def while_(self, cond: Callable[[], str], body: Callable[[], None]) -> None:
        """``while (cond()) body()``; ``cond`` emits code and returns an i1."""
        L = self.fresh("W")
        self.do(f"br label %{L}.head")
        self.label(f"{L}.head")
        c = cond()
        self.do(f"br i1 {c}, label %{L}.body, label %{L}.exit")
        self.label(f"{L}.body")
        body()
        self.do(f"br label %{L}.head")
        self.label(f"{L}.exit")

    def if_(self, cond: str, then: Callable[[], None], otherwise: Callable[[], None] | None = None) -> None:
        L = self.fresh("If")
        self.do(f"br i1 {cond}, label %{L}.then, label %{L}.else")
        self.label(f"{L}.then")
        then()
        self.do(f"br label %{L}.end")
        self.label(f"{L}.else")
        if otherwise is not None:
            otherwise()
        self.do(f"br label %{L}.end")
        self.label(f"{L}.end")

    # ---- small helpers over the index type and the tables ----
    def gep(self, ty: str, base: str, i: str | int) -> str:
        return self(f"getelementptr {ty}, ptr {base}, {self.spec.I} {i}")

    def load(self, ty: str, ptr: str) -> str:
        return self(f"load {ty}, ptr {ptr}")

    def update(self, ptr: str, ty: str, op: str, operand: str) -> None:
        """``*ptr = *ptr op operand``."""
        self.do(f"store {ty} {self(f'{op} {ty} {self.load(ty, ptr)}, {operand}')}, ptr {ptr}")

    def index(self, table: str, i: str | int) -> str:
        """``(I) table[i]`` for an int32 table."""
        p = self(f"getelementptr i32, ptr {table}, {self.spec.I} {i}")
        return self.widen(self(f"load i32, ptr {p}, align 4"))

    def widen(self, v32: str) -> str:
        return v32 if self.spec.index_bits == 32 else self(f"sext i32 {v32} to i64")

    def to64(self, v: str) -> str:
        return v if self.spec.index_bits == 64 else self(f"zext i32 {v} to i64")

    def slot(self, base: str, i: str | int) -> str:
        """Pointer to vector ``i`` of the buffer ``base``."""
        return self(f"getelementptr {self.spec.V}, ptr {base}, {self.spec.I} {i}")

    def vload(self, base: str, i: str | int) -> str:
        V = self.spec.V
        return self(f"load {V}, ptr {self.slot(base, i)}, align {self.spec.vbytes}")

    def vstore(self, value: str, base: str, i: str | int) -> None:
        V = self.spec.V
        self.do(f"store {V} {value}, ptr {self.slot(base, i)}, align {self.spec.vbytes}")

    def field(self, net: str, name: str) -> str:
        ty = "ptr" if NET_FIELDS[_FIELD[name]][1] else self.spec.I
        p = self(f"getelementptr %lgc_net, ptr {net}, i32 0, i32 {_FIELD[name]}")
        return self(f"load {ty}, ptr {p}")

    def text(self) -> str:
        body = self.lines if self.ret != "void" or (self.lines and self.lines[-1].startswith("  ret")) \
            else [*self.lines, "  ret void"]
        return "\n".join([f"define {self.linkage} {self.ret} @{self.name}({self.params}) {self.attrs} {{", "entry:",
                          *self.allocas, *body, "}", *self.metadata])


# ---------------------------------------------------------------- packing

_TRANSPOSE_MASKS = {32: 0x00000000FFFFFFFF, 16: 0x0000FFFF0000FFFF, 8: 0x00FF00FF00FF00FF,
                    4: 0x0F0F0F0F0F0F0F0F, 2: 0x3333333333333333, 1: 0x5555555555555555}


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _emit_row_masks(spec: Spec) -> str:
    """``row_masks(row, n_in, m, stride)``: for each 64-input block of one bool row, the 64-bit
    mask ``bit j = row[64 blk + j] != 0`` (any nonzero byte is True) to ``m[blk * stride]`` (i64
    units). Whole blocks as ``<64 x i8>`` compares; the tail by 8-byte groups, then bytes; never
    reads past the row."""
    I = spec.I
    f = Fn(spec, "lgc_row_masks", f"ptr %row, {I} %n_in, ptr %m, {I} %stride", attrs="#0")
    nfull = f(f"lshr {I} %n_in, 6")

    def block(blk: str) -> None:
        p = f(f"getelementptr <64 x i8>, ptr %row, {I} {blk}")
        v = f(f"load <64 x i8>, ptr {p}, align 1")
        bits = f(f"bitcast <64 x i1> {f(f'icmp ne <64 x i8> {v}, zeroinitializer')} to i64")
        at = f(f"mul {I} {blk}, %stride")
        f.do(f"store i64 {bits}, ptr {f.gep('i64', '%m', at)}, align 8")

    f.loop("0", nfull, block)
    rem = f(f"and {I} %n_in, 63")

    def tail() -> None:
        base = f(f"getelementptr <64 x i8>, ptr %row, {I} {nfull}")
        acc = f.alloca("i64", "0")

        def octet(q: str) -> None:
            v = f(f"load <8 x i8>, ptr {f(f'getelementptr <8 x i8>, ptr {base}, {I} {q}')}, align 1")
            nonzero = f(f"icmp ne <8 x i8> {v}, zeroinitializer")
            bits = f(f"zext i8 {f(f'bitcast <8 x i1> {nonzero} to i8')} to i64")
            sh = f(f"shl i64 {bits}, {f.to64(f(f'shl {I} {q}, 3'))}")
            f.update(acc, "i64", "or", sh)

        f.loop("0", f(f"lshr {I} {rem}, 3"), octet)

        def byte(j: str) -> None:
            v = f(f"load i8, ptr {f(f'getelementptr i8, ptr {base}, {I} {j}')}, align 1")
            bit = f(f"zext i1 {f(f'icmp ne i8 {v}, 0')} to i64")
            sh = f(f"shl i64 {bit}, {f.to64(j)}")
            f.update(acc, "i64", "or", sh)

        f.loop(f(f"and {I} {rem}, -8"), rem, byte)
        at = f(f"getelementptr i64, ptr %m, {I} {f(f'mul {I} {nfull}, %stride')}")
        f.do(f"store i64 {f(f'load i64, ptr {acc}')}, ptr {at}, align 8")

    f.if_(f(f"icmp ne {I} {rem}, 0"), tail)
    return f.text()


def _emit_transpose64(spec: Spec) -> str:
    """``transpose64(m, s)``: 64 vectors of 64-bit masks (vector r, lane w: sample 64w + r, bit
    j = input j) -> 64 slots (slot j, lane w: bit r = sample 64w + r). Hacker's Delight's
    recursive block swap, 6 stages of shift/xor on whole vectors, every lane at once."""
    f = Fn(spec, "lgc_transpose64", "ptr %m, ptr %s")
    V = spec.V
    rows = [f.vload("%m", r) for r in range(64)]
    for h in (32, 16, 8, 4, 2, 1):
        mask, shift = spec.splat(_signed(_TRANSPOSE_MASKS[h])), spec.splat(h)
        for r in range(64):
            if r & h:
                continue
            lo, hi = rows[r], rows[r + h]
            down = f(f"lshr {V} {lo}, {shift}")
            t = f(f"and {V} {f(f'xor {V} {down}, {hi}')}, {mask}")
            rows[r + h] = f(f"xor {V} {hi}, {t}")
            rows[r] = f(f"xor {V} {lo}, {f(f'shl {V} {t}, {shift}')}")
    for j, v in enumerate(rows):
        f.vstore(v, "%s", j)
    return f.text()


def _emit_pack_rows(spec: Spec) -> str:
    """``pack_rows(x, n_in, nrows, S, M)``: one tile of bool rows ``x`` [nrows, n_in] (rows past
    ``nrows`` read as zero) into input slots S[0 .. 64 ceil(n_in / 64)) (slots past n_in get
    zeros or garbage that the gates overwrite before reading). ``M``: 64 ceil(n_in/64) vectors."""
    I, vw = spec.I, spec.vector_words
    f = Fn(spec, "lgc_pack_rows", f"ptr %x, {I} %n_in, {I} %nrows, ptr %S, ptr %M")
    nb = f(f"lshr {I} {f(f'add {I} %n_in, 63')}, 6")
    stride = 64 * vw  # i64 units between one block's masks and the next's

    def sample(s: str) -> None:
        r = f(f"and {I} {s}, 63")
        at = f(f"add {I} {f(f'mul {I} {r}, {vw}')}, {f(f'lshr {I} {s}, 6')}")
        m = f(f"getelementptr i64, ptr %M, {I} {at}")

        def live() -> None:
            row = f(f"getelementptr i8, ptr %x, {I} {f(f'mul {I} {s}, %n_in')}")
            f.do(f"call void @lgc_row_masks(ptr {row}, {I} %n_in, ptr {m}, {I} {stride})")

        def padding() -> None:
            f.loop("0", nb, lambda blk: f.do(f"store i64 0, ptr {f.gep('i64', m, f(f'mul {I} {blk}, {stride}'))}, align 8"))

        f.if_(f(f"icmp slt {I} {s}, %nrows"), live, padding)

    f.loop("0", str(spec.tile), sample)

    def block(blk: str) -> None:
        first = f(f"mul {I} {blk}, 64")
        f.do(f"call void @lgc_transpose64(ptr {f.slot('%M', first)}, ptr {f.slot('%S', first)})")

    f.loop("0", nb, block)
    return f.text()


def _emit_load_packed(spec: Spec) -> str:
    """``load_packed(words, wstride, w0, nw, n_in, S)``: input j's slot = words[j][w0 .. w0+nw)
    (``nw`` <= vector words; the rest zero). A whole vector load when the tile is full."""
    I, V, vw = spec.I, spec.V, spec.vector_words
    f = Fn(spec, "lgc_load_packed", f"ptr %words, {I} %wstride, {I} %w0, {I} %nw, {I} %n_in, ptr %S")

    def row(j: str) -> str:
        at = f(f"mul {I} {j}, %wstride")
        return f.gep("i64", "%words", f(f"add {I} {at}, %w0"))

    def whole(j: str) -> None:
        f.vstore(f(f"load {V}, ptr {row(j)}, align 8"), "%S", j)

    def partial(j: str) -> None:
        p = row(j)
        vec = "zeroinitializer"
        for w in range(vw):
            ok = f(f"icmp slt {I} {w}, %nw")
            q = f(f"getelementptr i64, ptr {p}, {I} {f(f'select i1 {ok}, {I} {w}, {I} 0')}")
            val = f(f"select i1 {ok}, i64 {f(f'load i64, ptr {q}, align 8')}, i64 0")
            vec = f(f"insertelement {V} {vec}, i64 {val}, i32 {w}")
        f.vstore(vec, "%S", j)

    f.if_(f(f"icmp eq {I} %nw, {vw}"), lambda: f.loop("0", "%n_in", whole), lambda: f.loop("0", "%n_in", partial))
    return f.text()


# ---------------------------------------------------------------- gates

def _gate_value(f: Fn, kind: int, a: Callable[[], str], b: Callable[[], str]) -> str:
    """The value of a 2-input gate kind (see ``_schedule.KIND_NAMES``) of operand loaders a, b."""
    V, ones = f.spec.V, f.spec.ones
    name = KIND_NAMES[kind]
    if name == "FALSE":
        return "zeroinitializer"
    if name == "TRUE":
        return ones
    x = a()
    if name == "COPY":
        return x
    if name == "NOT":
        return f(f"xor {V} {x}, {ones}")
    y = b()
    op, invert_b, invert_out = {"AND": ("and", 0, 0), "ANDNOT": ("and", 1, 0), "XOR": ("xor", 0, 0),
                                "OR": ("or", 0, 0), "NOR": ("or", 0, 1), "XNOR": ("xor", 0, 1),
                                "ORNOT": ("or", 1, 0), "NAND": ("and", 0, 1)}[name]
    if invert_b:
        y = f(f"xor {V} {y}, {ones}")
    v = f(f"{op} {V} {x}, {y}")
    return f(f"xor {V} {v}, {ones}") if invert_out else v


def _emit_gate_runner(spec: Spec, name: str, width: int, dst_col: int) -> str:
    """``name(S, ngroups, groups, gates, tgates, D)``: for each group (kind, g0, g1), a
    branch-free loop over its rows: 2-input kinds over ``gates`` rows of ``width`` int32 (slot
    a, slot b, .., destination at column ``dst_col``), 3-input kinds (16 + vpternlogq
    immediate) over ``tgates`` rows (a, b, c, destination); results go to ``D[destination]``.
    ``run_gates`` (rows (a, b, out), D = S) and ``head_gates`` (rows (a, b, c, place in V))."""
    I = spec.I
    f = Fn(spec, name, f"ptr %S, {I} %ngroups, ptr %groups, ptr %gates, ptr %tgates, ptr %D")
    kinds = list(range(len(KIND_NAMES))) + ([16 + imm for imm in range(256)] if spec.ternary else [])

    def group(gi: str) -> None:
        row = f(f"getelementptr [3 x i32], ptr %groups, {I} {gi}")
        kind = f(f"load i32, ptr {row}, align 4")
        g0, g1 = f.index(row, 1), f.index(row, 2)
        join = f.fresh("join")
        blocks = {k: f.fresh("kind") for k in kinds}
        f.do(f"switch i32 {kind}, label %{join} [" + " ".join(f"i32 {k}, label %{b}" for k, b in blocks.items()) + "]")
        for k, block in blocks.items():
            f.label(block)
            if k >= 16:  # one small function per truth table: 256 loops in one function take LLVM minutes
                f.do(f"call void @lgc_ternary{k - 16}(ptr %S, {I} {g0}, {I} {g1}, ptr %tgates, ptr %D)")
            else:
                f.loop(g0, g1, lambda i, k=k: _gate_row(f, k, i, width, dst_col))
            f.do(f"br label %{join}")
        f.label(join)

    f.loop("0", "%ngroups", group)
    return f.text()


def _emit_ternary_loop(spec: Spec, imm: int) -> str:
    """``ternary<imm>(S, g0, g1, tgates, D)``: the rows g0..g1 of ``tgates`` (slot a, slot b,
    slot c, destination), all 3-input gates with truth table ``imm``: D[destination] = value."""
    I = spec.I
    f = Fn(spec, f"lgc_ternary{imm}", f"ptr %S, {I} %g0, {I} %g1, ptr %tgates, ptr %D")
    f.loop("%g0", "%g1", lambda i: _gate_row(f, 16 + imm, i, 4, 3), unroll=False)
    return f.text()


def _ternary_value(f: Fn, imm: int, a: str, b: str, c: str) -> str:
    """The 3-input gate with truth table ``imm`` (bit 4a + 2b + c, vpternlogq's convention):
    one vpternlogq, or the 2-input gates of (b, c) for a = 0 and a = 1, muxed by a."""
    V = f.spec.V
    if f.spec.ternlog:
        return f(f"call {V} @llvm.x86.avx512.pternlog.q.512({V} {a}, {V} {b}, {V} {c}, i32 {imm})")
    low, high = (_two_input(f, (imm >> shift) & 15, b, c) for shift in (0, 4))
    if low == high:
        return low
    differ = f(f"xor {V} {low}, {high}")
    return f(f"xor {V} {low}, {f(f'and {V} {a}, {differ}')}")


#: the 2-input kinds' truth tables, bit 2x + y for operands (x, y), as _gate_value computes them
_KIND_TABLE = {"FALSE": 0b0000, "TRUE": 0b1111, "COPY": 0b1100, "NOT": 0b0011, "AND": 0b1000, "ANDNOT": 0b0100,
               "XOR": 0b0110, "OR": 0b1110, "NOR": 0b0001, "XNOR": 0b1001, "ORNOT": 0b1101, "NAND": 0b0111}


def _swapped(table: int) -> int:
    """The same function with its operands exchanged (bits 1 and 2 trade places)."""
    return (table & 0b1001) | ((table & 0b0010) << 1) | ((table & 0b0100) >> 1)


def _two_input(f: Fn, table: int, b: str, c: str) -> str:
    """The gate of (b, c) whose truth table has bit 2b + c: a kind of (b, c) or of (c, b)."""
    for kind, name in enumerate(KIND_NAMES):
        for x, y, t in ((b, c, table), (c, b, _swapped(table))):
            if _KIND_TABLE[name] == t:
                return _gate_value(f, kind, lambda x=x: x, lambda y=y: y)
    raise AssertionError(f"no kind computes truth table {table:04b}")  # pragma: no cover - all 16 are covered


def _gate_row(f: Fn, kind: int, i: str, width: int, dst_col: int) -> None:
    I, V = f.spec.I, f.spec.V
    if kind >= 16:
        row = f(f"getelementptr [4 x i32], ptr %tgates, {I} {i}")
        a, b, c = (f.vload("%S", f.index(row, col)) for col in range(3))
        f.vstore(_ternary_value(f, kind - 16, a, b, c), "%D", f.index(row, 3))
        return
    row = f(f"getelementptr [{width} x i32], ptr %gates, {I} {i}")
    v = _gate_value(f, kind, lambda: f.vload("%S", f.index(row, 0)), lambda: f.vload("%S", f.index(row, 1)))
    f.vstore(v, "%D", f.index(row, dst_col))


# ---------------------------------------------------------------- readout

def _csa(f: Fn, a: str, b: str, c: str) -> tuple[str, str]:
    """Full adder on bit-sliced vectors: (carry, sum)."""
    V = f.spec.V
    u = f(f"xor {V} {a}, {b}")
    h = f(f"or {V} {f(f'and {V} {a}, {b}')}, {f(f'and {V} {u}, {c}')}")
    return h, f(f"xor {V} {u}, {c}")


def _harley_seal16(f: Fn, xs: list[str], state: list[str], planes: str, nplanes: str) -> None:
    """Add 16 values into the count planes (allocas ``state``: ones, twos, fours, eights; 15
    full adders) and ripple the weight-16 carry into ``planes[4 .. nplanes)``."""
    V = f.spec.V
    ones, twos, fours, eights = (f(f"load {V}, ptr {p}") for p in state)

    def pair(x0: str, x1: str, x2: str, x3: str) -> str:
        nonlocal ones, twos
        twos_a, ones = _csa(f, ones, x0, x1)
        twos_b, ones = _csa(f, ones, x2, x3)
        fours_x, twos = _csa(f, twos, twos_a, twos_b)
        return fours_x

    fours_a = pair(*xs[0:4])
    fours_b = pair(*xs[4:8])
    eights_a, fours = _csa(f, fours, fours_a, fours_b)
    fours_a = pair(*xs[8:12])
    fours_b = pair(*xs[12:16])
    eights_b, fours = _csa(f, fours, fours_a, fours_b)
    sixteens, eights = _csa(f, eights, eights_a, eights_b)
    for p, v in zip(state, (ones, twos, fours, eights)):
        f.do(f"store {V} {v}, ptr {p}")
    carry = f.alloca(V)
    f.do(f"store {V} {sixteens}, ptr {carry}")

    def ripple(i: str) -> None:
        p = f.slot(planes, i)
        pv, cv = f(f"load {V}, ptr {p}"), f(f"load {V}, ptr {carry}")
        f.do(f"store {V} {f(f'xor {V} {pv}, {cv}')}, ptr {p}")
        f.do(f"store {V} {f(f'and {V} {pv}, {cv}')}, ptr {carry}")

    f.loop("4", nplanes, ripple)


def _emit_group_count(spec: Spec) -> str:
    """``group_count(S, outs, m, V, mv, P) -> L``: P[0 .. L) = the per-sample popcount of the
    ``m`` slots ``outs`` and the ``mv`` values V, bit-sliced (about one full adder per value;
    the last partial block of 16 is zero-padded)."""
    I, Vt = spec.I, spec.V
    f = Fn(spec, "lgc_group_count", f"ptr %S, ptr %outs, {I} %m, ptr %V, {I} %mv, ptr %P", ret=I)
    total = f(f"add {I} %m, %mv")
    nplanes = f.alloca(I, "4")
    f.while_(lambda: f(f"icmp sle {I} {f(f'shl {I} 1, {f.load(I, nplanes)}')}, {total}"),
             lambda: f.update(nplanes, I, "add", "1"))
    L = f(f"load {I}, ptr {nplanes}")
    f.loop("4", L, lambda i: f.vstore("zeroinitializer", "%P", i))
    state = [f.alloca(Vt, "zeroinitializer") for _ in range(4)]

    def slots16(o: str) -> None:
        base = f(f"shl {I} {o}, 4")
        _harley_seal16(f, [f.vload("%S", f.index("%outs", f(f"add {I} {base}, {i}"))) for i in range(16)],
                       state, "%P", L)

    def values16(v: str) -> None:
        base = f(f"shl {I} {v}, 4")
        _harley_seal16(f, [f.vload("%V", f(f"add {I} {base}, {i}")) for i in range(16)], state, "%P", L)

    f.loop("0", f(f"lshr {I} %m, 4"), slots16)
    f.loop("0", f(f"lshr {I} %mv, 4"), values16)
    rest = f.alloca(f"[32 x {Vt}]")
    nr = f.alloca(I, "0")

    def push(value: str) -> None:
        at = f(f"load {I}, ptr {nr}")
        f.vstore(value, rest, at)
        f.do(f"store {I} {f(f'add {I} {at}, 1')}, ptr {nr}")

    f.loop(f(f"and {I} %m, -16"), "%m", lambda o: push(f.vload("%S", f.index("%outs", o))))
    f.loop(f(f"and {I} %mv, -16"), "%mv", lambda v: push(f.vload("%V", v)))
    used = f(f"load {I}, ptr {nr}")
    padded = f(f"and {I} {f(f'add {I} {used}, 15')}, -16")
    f.loop(used, padded, lambda i: f.vstore("zeroinitializer", rest, i))

    def rest16(r: str) -> None:
        base = f(f"shl {I} {r}, 4")
        _harley_seal16(f, [f.vload(rest, f(f"add {I} {base}, {i}")) for i in range(16)], state, "%P", L)

    f.loop("0", f(f"lshr {I} {padded}, 4"), rest16)
    for i, p in enumerate(state):
        f.vstore(f(f"load {Vt}, ptr {p}"), "%P", i)
    f.do(f"ret {I} {L}")
    return f.text()


def _emit_add_shifted(spec: Spec) -> str:
    """``add_shifted(A, W, P, L, shift, sign)``: A (W planes, two's complement) += sign * (P
    (L planes) << shift), a bit-sliced ripple adder; subtracting adds ~P + 1 from bit shift up."""
    I, V = spec.I, spec.V
    f = Fn(spec, "lgc_add_shifted", f"ptr %A, {I} %W, ptr %P, {I} %L, {I} %shift, i32 %sign")
    neg = f("icmp slt i32 %sign, 0")
    flip = f(f"select i1 {neg}, {V} {spec.ones}, {V} zeroinitializer")
    carry = f.alloca(V, flip)

    def plane(i: str) -> None:
        j = f(f"sub {I} {i}, %shift")
        inside = f(f"icmp slt {I} {j}, %L")
        p = f.vload("%P", f(f"select i1 {inside}, {I} {j}, {I} 0"))
        p = f(f"xor {V} {f(f'select i1 {inside}, {V} {p}, {V} zeroinitializer')}, {flip}")
        a, c = f.vload("%A", i), f(f"load {V}, ptr {carry}")
        u = f(f"xor {V} {a}, {p}")
        f.vstore(f(f"xor {V} {u}, {c}"), "%A", i)
        both, either = f(f"and {V} {a}, {p}"), f(f"and {V} {u}, {c}")
        f.do(f"store {V} {f(f'or {V} {both}, {either}')}, ptr {carry}")

    f.loop("%shift", "%W", plane)
    return f.text()


def _lanes(spec: Spec) -> int:
    """Samples per int32 vector in add_planes (one byte or one i16 of plane bits)."""
    return 16 if spec.vector_words >= 8 else 8


def _emit_add_planes(spec: Spec) -> str:
    """``add_planes(acc, A, W)``: acc[s] += sum over planes k < W of bit s of A[k] times 2^k
    (the top plane is the sign, -2^(W-1)), chunk by chunk of acc: a select of the plane's weight
    by the bits (a masked add) per plane, acc loaded and stored once per chunk."""
    I = spec.I
    n = _lanes(spec)
    bt, vt, mt = f"i{n}", f"<{n} x i32>", f"<{n} x i1>"
    f = Fn(spec, "lgc_add_planes", f"ptr %acc, ptr %A, {I} %W")
    top = f(f"sub {I} %W, 1")
    r = f.alloca(vt)

    def chunk(c: str) -> None:
        at = f(f"getelementptr {vt}, ptr %acc, {I} {c}")
        f.do(f"store {vt} {f(f'load {vt}, ptr {at}, align 4')}, ptr {r}")

        def plane(k: str) -> None:
            w = f(f"shl i64 1, {f.to64(k)}")
            is_top, neg = f(f"icmp eq {I} {k}, {top}"), f(f"sub i64 0, {w}")
            w = f(f"trunc i64 {f(f'select i1 {is_top}, i64 {neg}, i64 {w}')} to i32")
            wv = f(f"shufflevector {vt} {f(f'insertelement {vt} poison, i32 {w}, i32 0')}, {vt} poison, "
                   f"<{n} x i32> zeroinitializer")
            byte = f(f"getelementptr i8, ptr {f.slot('%A', k)}, {I} {f(f'mul {I} {c}, {n // 8}')}")
            bits = f(f"bitcast {bt} {f(f'load {bt}, ptr {byte}, align 1')} to {mt}")
            inc = f(f"select {mt} {bits}, {vt} {wv}, {vt} zeroinitializer")
            f.update(r, vt, "add", inc)

        f.loop("0", "%W", plane)
        f.do(f"store {vt} {f(f'load {vt}, ptr {r}')}, ptr {at}, align 4")

    f.loop("0", str(spec.tile // n), chunk)
    return f.text()


def _emit_class_count(spec: Spec) -> str:
    """``class_count(S, terms, t0, t1, term_slots, V, acc)``: acc (one class's TILE int32) +=
    the terms t0..t1 (rows (class, shift, sign, start, end, v0, v1)): each term's count planes
    are added, shifted and signed, into one bit-sliced two's complement number of W planes
    (2^(W-1) > the largest |score|), converted to int32 once."""
    I, V = spec.I, spec.V
    f = Fn(spec, "lgc_class_count", f"ptr %S, ptr %terms, {I} %t0, {I} %t1, ptr %term_slots, ptr %V, ptr %acc")
    total = f.alloca("i64", "0")

    def term_row(t: str) -> str:
        return f(f"getelementptr [7 x i32], ptr %terms, {I} {t}")

    def bound(t: str) -> None:
        row = term_row(t)
        m = f(f"sub {I} {f.index(row, 4)}, {f.index(row, 3)}")
        mv = f(f"sub {I} {f.index(row, 6)}, {f.index(row, 5)}")
        most = f(f"shl i64 {f.to64(f(f'add {I} {m}, {mv}'))}, {f.to64(f.index(row, 1))}")
        f.update(total, "i64", "add", most)

    f.loop("%t0", "%t1", bound)
    limit = f(f"load i64, ptr {total}")
    width = f.alloca(I, "1")

    def fits() -> str:
        w = f(f"load {I}, ptr {width}")
        below = f.to64(f(f"sub {I} {w}, 1"))
        room = f(f"icmp sle i64 {f(f'shl i64 1, {below}')}, {limit}")
        return f(f"and i1 {f(f'icmp slt {I} {w}, 63')}, {room}")

    f.while_(fits, lambda: f.update(width, I, "add", "1"))
    W = f(f"load {I}, ptr {width}")
    A, P = f.alloca(f"[64 x {V}]"), f.alloca(f"[64 x {V}]")
    f.loop("0", W, lambda i: f.vstore("zeroinitializer", A, i))

    def term(t: str) -> None:
        row = term_row(t)
        start, end, v0, v1 = (f.index(row, col) for col in (3, 4, 5, 6))
        slots = f(f"getelementptr i32, ptr %term_slots, {I} {start}")
        L = f(f"call {I} @lgc_group_count(ptr %S, ptr {slots}, {I} {f(f'sub {I} {end}, {start}')}, "
              f"ptr {f.slot('%V', v0)}, {I} {f(f'sub {I} {v1}, {v0}')}, ptr {P})")
        sign = f(f"load i32, ptr {f(f'getelementptr i32, ptr {row}, i32 2')}, align 4")
        f.do(f"call void @lgc_add_shifted(ptr {A}, {I} {W}, ptr {P}, {I} {L}, {I} {f.index(row, 1)}, i32 {sign})")

    f.loop("%t0", "%t1", term)
    f.do(f"call void @lgc_add_planes(ptr %acc, ptr {A}, {I} {W})")
    return f.text()


def _emit_readout(spec: Spec) -> str:
    """``readout(net, S, V, acc, row0, nrows, scores)``: the group-sum head of one tile: acc =
    consts, the head gates into V, each class's run of terms counted, scores[row0 ..] written."""
    I, tile = spec.I, spec.tile
    n = _lanes(spec)
    vt = f"<{n} x i32>"
    f = Fn(spec, "lgc_readout", f"ptr %net, ptr %S, ptr %V, ptr %acc, {I} %row0, {I} %nrows, ptr %scores")
    k, consts, nterms, terms = (f.field("%net", x) for x in ("k", "consts", "nterms", "terms"))

    def init(c: str) -> None:
        cv = f(f"load i32, ptr {f(f'getelementptr i32, ptr {consts}, {I} {c}')}, align 4")
        splat = f(f"shufflevector {vt} {f(f'insertelement {vt} poison, i32 {cv}, i32 0')}, {vt} poison, "
                  f"<{n} x i32> zeroinitializer")
        base = f(f"mul {I} {c}, {tile // n}")
        f.loop("0", str(tile // n), lambda s: f.do(f"store {vt} {splat}, ptr {f.gep(vt, '%acc', f(f'add {I} {base}, {s}'))}, align 4"))

    f.loop("0", k, init)
    ng, groups, rows = (f.field("%net", x) for x in ("nterm_groups", "term_groups", "term_gates"))
    f.do(f"call void @lgc_head_gates(ptr %S, {I} {ng}, ptr {groups}, ptr {rows}, ptr {rows}, ptr %V)")
    slots = f.field("%net", "term_slots")
    t0 = f.alloca(I, "0")

    def run_of_class() -> None:
        first = f(f"load {I}, ptr {t0}")
        cls = f.index(terms, f(f"mul {I} {first}, 7"))
        t1 = f.alloca(I, f(f"add {I} {first}, 1"))

        def same_class() -> str:
            t = f(f"load {I}, ptr {t1}")
            inside = f(f"icmp slt {I} {t}, {nterms}")
            other = f.index(terms, f(f"mul {I} {f(f'select i1 {inside}, {I} {t}, {I} {first}')}, 7"))
            return f(f"and i1 {inside}, {f(f'icmp eq {I} {other}, {cls}')}")

        f.while_(same_class, lambda: f.update(t1, I, "add", "1"))
        end = f(f"load {I}, ptr {t1}")
        acc = f(f"getelementptr i32, ptr %acc, {I} {f(f'mul {I} {cls}, {tile}')}")
        f.do(f"call void @lgc_class_count(ptr %S, ptr {terms}, {I} {first}, {I} {end}, ptr {slots}, ptr %V, ptr {acc})")
        f.do(f"store {I} {end}, ptr {t0}")

    f.while_(lambda: f(f"icmp slt {I} {f(f'load {I}, ptr {t0}')}, {nterms}"), run_of_class)

    def sample(s: str) -> None:
        dst = f(f"mul {I} {f(f'add {I} %row0, {s}')}, {k}")

        def cls(c: str) -> None:
            at = f(f"add {I} {f(f'mul {I} {c}, {tile}')}, {s}")
            v = f(f"load i32, ptr {f.gep('i32', '%acc', at)}, align 4")
            f.do(f"store i32 {v}, ptr {f.gep('i32', '%scores', f(f'add {I} {dst}, {c}'))}, align 4")

        f.loop("0", k, cls)

    f.loop("0", "%nrows", sample)
    return f.text()


def _emit_write_bits(spec: Spec) -> str:
    """``write_bits(S, out_slots, n_out, row0, nrows, bits)``: bits[row0 + s][o] = bit s of slot
    out_slots[o] (a circuit without a head)."""
    I = spec.I
    f = Fn(spec, "lgc_write_bits", f"ptr %S, ptr %outs, {I} %n_out, {I} %row0, {I} %nrows, ptr %bits")

    def sample(s: str) -> None:
        byte, sh = f(f"lshr {I} {s}, 3"), f(f"trunc {I} {f(f'and {I} {s}, 7')} to i8")
        base = f(f"mul {I} {f(f'add {I} %row0, {s}')}, %n_out")

        def out(o: str) -> None:
            p = f(f"getelementptr i8, ptr {f.slot('%S', f.index('%outs', o))}, {I} {byte}")
            value = f.load("i8", p)
            bit = f(f"and i8 {f(f'lshr i8 {value}, {sh}')}, 1")
            f.do(f"store i8 {bit}, ptr {f.gep('i8', '%bits', f(f'add {I} {base}, {o}'))}")

        f.loop("0", "%n_out", out)

    f.loop("0", "%nrows", sample)
    return f.text()


def _emit_run(spec: Spec, name: str, linkage: str) -> str:
    """``run(net, x, packed, wstride, n, scores, bits, ws) -> i32``: rows [0, n) of bool bytes
    ``x`` [n, n_in] or of packed words (``packed``, row stride ``wstride`` words; x is ignored
    when packed is not null) into scores int32 [n, k] (k > 0) or bits uint8 [n, n_out]. ``ws``:
    :func:`workspace_bytes` bytes, any alignment. Returns 0."""
    I, tile = spec.I, spec.tile
    f = Fn(spec, name, f"ptr %net, ptr %x, ptr %packed, {I} %wstride, {I} %n, ptr %scores, ptr %bits, ptr %ws",
           ret="i32", linkage=linkage)
    fields = {x: f.field("%net", x) for x in ("n_in", "n_slots", "ngroups", "groups", "gates", "tgates", "n_out",
                                              "out_slots", "k", "nv")}
    n_in = fields["n_in"]
    address = f(f"ptrtoint ptr %ws to {I}")
    skip = f(f"and {I} {f(f'sub {I} 0, {address}')}, 63")
    S = f(f"getelementptr i8, ptr %ws, {I} {skip}")
    nb = f(f"lshr {I} {f(f'add {I} {n_in}, 63')}, 6")
    M = f.slot(S, fields["n_slots"])
    V = f.slot(M, f(f"shl {I} {nb}, 6"))
    acc = f.slot(V, fields["nv"])

    def tile_step(row0: str) -> None:
        left = f(f"sub {I} %n, {row0}")
        nrows = f(f"select i1 {f(f'icmp slt {I} {left}, {tile}')}, {I} {left}, {I} {tile}")

        def from_words() -> None:
            nw = f(f"lshr {I} {f(f'add {I} {nrows}, 63')}, 6")
            f.do(f"call void @lgc_load_packed(ptr %packed, {I} %wstride, {I} {f(f'lshr {I} {row0}, 6')}, {I} {nw}, "
                 f"{I} {n_in}, ptr {S})")

        def from_rows() -> None:
            x = f(f"getelementptr i8, ptr %x, {I} {f(f'mul {I} {row0}, {n_in}')}")
            f.do(f"call void @lgc_pack_rows(ptr {x}, {I} {n_in}, {I} {nrows}, ptr {S}, ptr {M})")

        f.if_(f("icmp ne ptr %packed, null"), from_words, from_rows)
        f.do(f"call void @lgc_run_gates(ptr {S}, {I} {fields['ngroups']}, ptr {fields['groups']}, "
             f"ptr {fields['gates']}, ptr {fields['tgates']}, ptr {S})")
        f.if_(f(f"icmp sgt {I} {fields['k']}, 0"),
              lambda: f.do(f"call void @lgc_readout(ptr %net, ptr {S}, ptr {V}, ptr {acc}, {I} {row0}, {I} {nrows}, "
                           f"ptr %scores)"),
              lambda: f.do(f"call void @lgc_write_bits(ptr {S}, ptr {fields['out_slots']}, {I} {fields['n_out']}, "
                           f"{I} {row0}, {I} {nrows}, ptr %bits)"))

    f.loop("0", "%n", tile_step, step=tile)
    f.do("ret i32 0")
    return f.text()


def workspace_bytes(spec: Spec, n_in: int, n_slots: int, nv: int, k: int) -> int:
    """Bytes of the workspace ``run`` needs (``n_slots`` as stored in the net struct: at least
    64 ceil(n_in / 64)): slots, row masks, head gate values, the int32 accumulators, alignment."""
    nb = -(-n_in // 64)
    return 64 + spec.vbytes * (n_slots + 64 * nb + nv) + 4 * k * spec.tile


def kernel_module(spec: Spec, *, run_name: str = "lgc_run", run_linkage: str = "",
                  triple: str = "", datalayout: str = "") -> str:
    """The whole kernel as one LLVM module's text: the ``%lgc_net`` type, every emitter's
    function and ``run_name`` (external unless ``run_linkage`` says otherwise)."""
    global _METADATA_IDS
    with _EMITTING:
        _METADATA_IDS = itertools.count(1000, 3)
        return _kernel_module(spec, run_name, run_linkage, triple, datalayout)


def _kernel_module(spec: Spec, run_name: str, run_linkage: str, triple: str, datalayout: str) -> str:
    head = []
    if datalayout:
        head.append(f'target datalayout = "{datalayout}"')
    if triple:
        head.append(f'target triple = "{triple}"')
    functions = [_emit_row_masks(spec), _emit_transpose64(spec), _emit_pack_rows(spec), _emit_load_packed(spec),
                 _emit_gate_runner(spec, "lgc_run_gates", 3, 2), _emit_gate_runner(spec, "lgc_head_gates", 4, 3),
                 _emit_group_count(spec), _emit_add_shifted(spec), _emit_add_planes(spec), _emit_class_count(spec),
                 _emit_readout(spec), _emit_write_bits(spec), _emit_run(spec, run_name, run_linkage)]
    if spec.ternary:
        functions += [_emit_ternary_loop(spec, imm) for imm in range(256)]
    # #1: called once per tile or term; kept out of line so LLVM does not inline and unroll
    # the whole kernel into one function (seconds of optimisation, no speed gained)
    # min-legal-vector-width: x86 CPUs tuned to prefer 256-bit vectors still use 512-bit registers here
    common = f'nounwind "no-builtins" "min-legal-vector-width"="{64 * spec.vector_words}"'
    tail = [f"attributes #0 = {{ {common} }}", f"attributes #1 = {{ noinline {common} }}"]
    if spec.ternlog:
        tail.append(f"declare {spec.V} @llvm.x86.avx512.pternlog.q.512({spec.V}, {spec.V}, {spec.V}, i32 immarg)")
    return "\n\n".join([*head, net_type(spec), *functions, *tail]) + "\n"
