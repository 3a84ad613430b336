"""C export (``.c`` + ``.h``): the network as one dependency-free C99 file for any C compiler.

``lgc.export(circuit, "net.c")`` writes ``net.c`` and ``net.h``. ``net.c`` is lgc's table-driven
CPU kernel (``cpu_kernel.c``, its portable path, verbatim: one source of truth with the ``c``
target) followed by the circuit's tables as ``static const`` data (the same schedule and
group-sum readout the ``c`` target passes at run time) and a few entry points; nothing is
specialised per circuit except data, so a 1M-gate net compiles as fast as a 100-gate one.
``net.h`` states the ABI (``P`` = the prefix, by default the file's stem), the same names and
arguments as the LLVM object export (:mod:`._llvm_export`):

- ``int P_scores(const uint8_t *x, size_t n, int32_t *scores, void *workspace)`` (circuits with a
  group-sum head): ``x`` is ``[n][P_NUM_INPUTS]`` bytes, any nonzero byte true; ``scores``
  ``[n][P_NUM_CLASSES]`` int32 popcounts (logits = score / ``P_TAU``).
- ``int P_scores_packed(const uint64_t *words, size_t wstride, size_t n, int32_t *scores, void
  *workspace)``: ``words`` ``[P_NUM_INPUTS][wstride]``, sample j = bit j % 64 of word j / 64.
- ``P_bits`` / ``P_bits_packed`` instead, for a circuit without a head: ``bits`` ``[n][P_NUM_OUTPUTS]`` 0/1.
- ``size_t P_workspace_bytes(void)``: the working memory a call needs (``P_WORKSPACE_BYTES`` bounds
  it for the portable build), any alignment, one per concurrent call; ``workspace = NULL`` makes
  the call malloc it (then -1 means that failed). With a workspace nothing is allocated, so the
  file suits bare-metal targets. Calls return 0.
- with an input encoder also ``void P_encode(const double *features, size_t n, uint8_t *x)`` (bit i
  = ``features[feature[i]] > threshold[i]``, the thresholds as exact doubles; NaN gives 0) and
  ``P_scores_features`` / ``P_bits_features`` taking raw features ``[n][P_NUM_FEATURES]``.
- ``extern const int64_t P_dims[4]``: inputs, outputs, classes (0: no head), features (0: no
  encoder), for callers through an FFI (ctypes, Node) that cannot read the header's macros.
- optionally (``difflogic_num_bits=``, the difflogic drop-in's shared library) difflogic's own
  ``void apply_logic_gate_net(const bool *inp, int32_t *out, size_t len)`` (``len`` blocks of
  ``num_bits`` samples).

The kernel's tile is 64 samples; any ``n`` works. Compiled with ``-std=gnu11 -mavx2 -DVW=4`` the
same file runs the ``cpu-avx2`` target's vector kernel (tested); ``-DVW=8`` with the AVX-512 flags
(``cpu_c.build_flags("cpu-avx512")``) selects the ``cpu-avx512`` kernel (it compiles; not run on the
AVX2-only host where this was written).

``straight_line=True`` emits the gates as straight-line C statements over the same slots instead
of gate tables (same packing and readout; the kernel calls it through its ``LGC_GATES_AS_CODE``
hook): a few percent faster, but gcc's build time grows steeply with it, so the default
(``None``) uses it for small circuits only (:data:`STRAIGHT_LINE_MAX_GATES`; benchmarks/RESULTS.md,
"Emitted C"). Cost: text generation is O(gates) numpy and string joins.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import re
import subprocess

import numpy as np

from ..ir import Circuit
from ._schedule import KIND_NAMES, Readout, Schedule, readout_schedule, schedule

FORMAT = "c"
SUFFIXES = (".c",)
KERNEL = pathlib.Path(__file__).with_name("cpu_kernel.c")
#: straight-line gates are used up to this many scheduled gates when ``straight_line`` is None.
#: Measured (benchmarks/emitted_c.py, gcc -O2, one thread): straight-line runs 1.03-1.09x the
#: tables' speed up to ~700 gates and builds in 0.6-1.8x their time; at 2.9K gates 1.20x but 6.6x
#: the build time (19 s), and gcc's time grows faster than the gate count beyond that.
STRAIGHT_LINE_MAX_GATES = 1000
#: flags the emitted file is tested with (gcc, aarch64-linux-gnu-gcc, riscv64-linux-gnu-gcc)
STRICT_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_C_KEYWORDS = frozenset("""auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void
volatile while _Bool _Complex _Imaginary bool main""".split())
#: straight-line expression of each schedule kind over operands a, b (see _schedule.KIND_NAMES)
_KIND_EXPR = {"FALSE": "(vec){{0}}", "TRUE": "~(vec){{0}}", "COPY": "{a}", "NOT": "~{a}", "AND": "{a} & {b}",
              "ANDNOT": "{a} & ~{b}", "XOR": "{a} ^ {b}", "OR": "{a} | {b}", "NOR": "~({a} | {b})",
              "XNOR": "~({a} ^ {b})", "ORNOT": "{a} | ~{b}", "NAND": "~({a} & {b})"}
_STATEMENTS_PER_FUNCTION = 1000   # straight-line code in functions this long (gcc's time still grows steeply)
#: the names the emitted C defines, after ``<prefix>_``
_GENERATED = ("groups", "gates", "tgates", "out_slots", "terms", "term_slots", "term_groups", "term_gates", "consts",
              "table", "size", "dims", "kernel_bytes", "workspace_bytes", "run", "scores", "scores_packed", "bits",
              "bits_packed", "feature", "threshold", "encode", "scores_features", "bits_features", "gates_as_code")


@dataclasses.dataclass(frozen=True)
class CSource:
    """The emitted text: ``c`` (the standalone ``.c``), ``h`` (the header) and the ``prefix`` of every symbol."""

    c: str
    h: str
    prefix: str


def prefix_for(path: str | os.PathLike) -> str:
    """The default symbol prefix for an output path: its stem as a C identifier (``net.c`` -> ``net``)."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", pathlib.Path(os.fspath(path)).stem) or "net"
    return stem if not stem[0].isdigit() else "net_" + stem


@functools.lru_cache(maxsize=1)
def _kernel_identifiers() -> frozenset[str]:
    return frozenset(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", KERNEL.read_text()))


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not _IDENT.match(prefix) or prefix in _C_KEYWORDS:
        raise ValueError(f"prefix must be a C identifier (letters, digits, _; not a keyword), got {prefix!r}")
    clash = sorted(name for name in (f"{prefix}_{g}" for g in _GENERATED) if name in _kernel_identifiers())
    if clash:
        raise ValueError(f"prefix {prefix!r} would redefine the kernel's {', '.join(clash)}; choose another")
    return prefix


def _array(ctype: str, name: str, values: np.ndarray) -> str:
    flat = np.asarray(values).reshape(-1)
    if flat.size == 0:
        return f"static const {ctype} {name}[1] = {{0}};  /* empty */\n"
    text = ",".join(map(str, flat.tolist()))
    # break lines every ~100 characters so editors and diff tools cope
    lines = re.findall(r".{1,100}(?:,|$)", text)
    return f"static const {ctype} {name}[{flat.size}] = {{\n" + "\n".join(lines) + "\n};\n"


def _straight_gates(name: str, groups: np.ndarray, gates: np.ndarray) -> str:
    """The scheduled gates as statements ``S[r] = a OP b;`` in schedule order, split into functions."""
    stmts: list[str] = []
    for kind, g0, g1 in groups.tolist():
        template = _KIND_EXPR[KIND_NAMES[kind]]
        rows = gates[g0:g1].tolist()
        stmts.extend(f"S[{r}] = {template.format(a=f'S[{a}]', b=f'S[{b}]')};" for a, b, r in rows)
    parts, calls = [], []
    for i in range(0, max(len(stmts), 1), _STATEMENTS_PER_FUNCTION):
        chunk = stmts[i:i + _STATEMENTS_PER_FUNCTION]
        parts.append(f"static void {name}_{len(calls)}(vec *S) {{\n    " + "\n    ".join(chunk or ["(void)S;"])
                     + "\n}\n")
        calls.append(f"{name}_{len(calls)}(S);")
    parts.append(f"static void {name}(vec *S) {{\n    " + "\n    ".join(calls) + "\n}\n")
    return "".join(parts)


def workspace_bytes(circuit: Circuit, sched: Schedule, readout: Readout | None) -> int:
    """``P_WORKSPACE_BYTES``: the portable build's (VW 1) working memory, with 8-byte pointers (an
    upper bound on 32-bit ABIs), mirroring ``lgc_workspace_bytes`` in cpu_kernel.c, plus one tile
    of encoded rows when the circuit has an input encoder."""
    n_in, k = circuit.num_inputs, circuit.head.k if circuit.head is not None else 0
    nv = max([1] + (readout.terms[:, 6].tolist() if readout is not None and len(readout.terms) else []))
    parts = [max(sched.num_slots, 1) * 8, n_in + 64, 8 * 64, 4 * 64 * max(k, 1),
             (n_in // 8 + 8) * 64 + (n_in + 63) // 64 * (64 + 8) * 8, nv * 8]
    encoded = 64 * n_in if circuit.input_encoder is not None else 0
    return 64 + sum(-(-b // 64) * 64 for b in parts) + encoded


def emit(circuit: Circuit, prefix: str = "net", *, straight_line: bool | None = None,
         difflogic_num_bits: int | None = None) -> CSource:
    """The C99 source and header of ``circuit`` (see the module docstring for the ABI).

    ``prefix``: symbol prefix (a C identifier). ``straight_line``: gates as code (True), as
    tables (False), or by size (None: up to :data:`STRAIGHT_LINE_MAX_GATES` scheduled gates).
    ``difflogic_num_bits`` (8, 16, 32 or 64): also define difflogic's ``apply_logic_gate_net``
    for batches of ``len * num_bits`` samples (circuits with a head only).
    Raises ValueError for a bad prefix or option, CircuitError for an invalid circuit."""
    circuit.validate()
    p = _check_prefix(prefix)
    head, enc = circuit.head, circuit.input_encoder
    if difflogic_num_bits is not None and (head is None or difflogic_num_bits not in (8, 16, 32, 64)):
        raise ValueError("difflogic_num_bits (8, 16, 32 or 64) needs a circuit with a group-sum head")
    if head is not None:
        sched, r = readout_schedule(circuit, fuse=False, inline=True)
    else:
        sched, r = schedule(circuit), None
    if straight_line is None:
        straight_line = len(sched.gates) <= STRAIGHT_LINE_MAX_GATES
    k = head.k if head is not None else 0
    P = p.upper()
    out, otype, width = ("scores", "int32_t", k) if head is not None else ("bits", "uint8_t", circuit.num_outputs)

    h = [f"/* {p}.h: the ABI of {p}.c (standalone C99, lgc's table-driven kernel), generated by lgc from a",
         f" * circuit of {circuit.num_inputs} inputs, {circuit.num_gates} gates, {circuit.num_outputs} outputs"
         + (f", a group-sum head of {k} classes (tau {head.tau:g})" if head else ", no head (raw output bits)")
         + (f", an input encoder over {enc.num_features} features" if enc else "") + ".",
         f" * Bool input x: uint8 [n][{P}_NUM_INPUTS], row-major; any nonzero byte is 1.",
         f" * Packed input words: uint64 [{P}_NUM_INPUTS][wstride], wstride >= ceil(n / 64): sample s of input j",
         " *   is bit s % 64 of words[j * wstride + s / 64].",
         (f" * Scores: int32 [n][{P}_NUM_CLASSES]; class c's score is the popcount of its group of outputs"
          f" (logits = score / {P}_TAU)." if head is not None else f" * Bits: uint8 [n][{P}_NUM_OUTPUTS], each 0 or 1."),
         f" * workspace: {p}_workspace_bytes() bytes (at most {P}_WORKSPACE_BYTES), any alignment, one per concurrent",
         " *   call; or NULL, and the call allocates it (malloc) itself. Calls return 0, or -1 when that fails. */",
         f"#ifndef {P}_H", f"#define {P}_H", "#include <stddef.h>", "#include <stdint.h>"]
    if difflogic_num_bits:
        h += ["#include <stdbool.h>"]
    h += [f"#define {P}_NUM_INPUTS {circuit.num_inputs}", f"#define {P}_NUM_OUTPUTS {circuit.num_outputs}",
          f"#define {P}_HAS_HEAD {int(head is not None)}"]
    if head is not None:
        h += [f"#define {P}_NUM_CLASSES {k}", f"#define {P}_TAU {float(head.tau)!r}"]
    if enc is not None:
        h += [f"#define {P}_NUM_FEATURES {enc.num_features}"]
    h += [f"#define {P}_TILE_SAMPLES 64  /* as emitted (VW 1); -DVW=4 builds run 256 */",
          f"#define {P}_VECTOR_WORDS 1",
          f"#define {P}_WORKSPACE_BYTES {workspace_bytes(circuit, sched, r)}  /* VW 1 build */",
          "#ifdef __cplusplus", 'extern "C" {', "#endif"]
    protos = [f"int {p}_{out}(const uint8_t *x, size_t n, {otype} *{out}, void *workspace);",
              f"int {p}_{out}_packed(const uint64_t *words, size_t wstride, size_t n, {otype} *{out}, void *workspace);",
              f"size_t {p}_workspace_bytes(void);",
              f"/* NUM_INPUTS, NUM_OUTPUTS, NUM_CLASSES (0: no head), NUM_FEATURES (0: no encoder), for FFI callers */",
              f"extern const int64_t {p}_dims[4];"]
    if enc is not None:
        protos += [f"/* raw features double [n][{P}_NUM_FEATURES] -> bool input x (bit i = feature > threshold) */",
                   f"void {p}_encode(const double *features, size_t n, uint8_t *x);",
                   f"int {p}_{out}_features(const double *features, size_t n, {otype} *{out}, void *workspace);"]
    if difflogic_num_bits:
        protos += [f"/* difflogic's entry point: inp bool [len * {difflogic_num_bits}][NUM_INPUTS], "
                   f"out int32 [len * {difflogic_num_bits}][NUM_CLASSES] */",
                   "void apply_logic_gate_net(const bool *inp, int32_t *out, size_t len);"]
    h += protos + ["#ifdef __cplusplus", "}", "#endif", f"#endif /* {P}_H */", ""]
    header = "\n".join(h)

    c = [f"/* {p}.c: a logic gate network as standalone C99, generated by lgc (circuit {circuit.content_hash()[:16]}).",
         f" * Build: cc -std=c99 -O2 -c {p}.c (or -std=gnu11 -mavx2 -DVW=4 for the AVX2 kernel).",
         f" * The ABI is in {p}.h (repeated below). The kernel is lgc/backends/cpu_kernel.c, verbatim; the",
         " * circuit's tables (or, for a small circuit, its gates as code) follow it. */",
         "#define LGC_API static", "#include <stddef.h>", "#include <stdint.h>", "#include <stdlib.h>"]
    if difflogic_num_bits:
        c += ["#include <stdbool.h>"]
    if straight_line:
        c += [f"#define LGC_GATES_AS_CODE {p}_gates_as_code  /* the gates as straight-line code, below */"]
    c += ["", "/* ---- the ABI (as in the header) ---- */", *protos, "", "/* ---- kernel: cpu_kernel.c ---- */",
          KERNEL.read_text(), "/* ---- the circuit ---- */"]
    empty = np.zeros(0, np.int32)
    tables = {"groups": empty if straight_line else sched.groups, "gates": empty if straight_line else sched.gates,
              "tgates": sched.tgates, "out_slots": sched.out_slots}
    for name in ("terms", "term_slots", "term_groups", "term_gates", "consts"):
        tables[name] = getattr(r, name) if r is not None else empty
    c += [_array("int32_t", f"{p}_{name}", values) for name, values in tables.items()]
    if straight_line:
        c.append(_straight_gates(f"{p}_gates_as_code", sched.groups, sched.gates))
    sizes = [circuit.num_inputs, sched.num_slots, 0 if straight_line else len(sched.groups), len(sched.out_slots), k,
             len(r.terms) if r is not None else 0, len(r.term_groups) if r is not None else 0]
    encoded = f"(size_t)lgc_tile_samples() * {circuit.num_inputs}" if enc is not None else "0"
    null_out = ("NULL, " if head is None else "") + out + (", NULL" if head is not None else "")
    c.append(f"""
/* The tables and sizes reach the kernel through volatile reads, so no compiler specialises the kernel to
 * them: that would only grow the code, and gcc then warns about paths the tables never take. */
static const int32_t *const volatile {p}_table[{len(tables)}] = {{
    {", ".join(f"{p}_{t}" for t in tables)}
}};
/* inputs, slots, groups, outputs, classes, terms, head-gate groups */
static const volatile int64_t {p}_size[7] = {{{", ".join(map(str, sizes))}}};
const int64_t {p}_dims[4] = {{{circuit.num_inputs}, {circuit.num_outputs}, {k}, {enc.num_features if enc else 0}}};

static size_t {p}_kernel_bytes(void) {{
    return (size_t)lgc_workspace_bytes({p}_size[0], {p}_size[1], {p}_size[4], {p}_size[5], {p}_table[4]);
}}

size_t {p}_workspace_bytes(void) {{ return {p}_kernel_bytes() + {encoded}; }}

static int {p}_run(const uint8_t *x, const uint64_t *words, size_t wstride, size_t n, {otype} *{out}, void *workspace) {{
    (void)lgc_has_ternary; (void)lgc_tile_samples;
    return lgc_run({p}_size[0], {p}_size[1], {p}_size[2], {p}_table[0], {p}_table[1], {p}_table[2],
                   {p}_size[3], {p}_table[3], {p}_size[4], {p}_size[5], {p}_table[4], {p}_table[5], {p}_size[6],
                   {p}_table[6], {p}_table[7], {p}_table[8], x, words, (int64_t)wstride, (int64_t)n, {null_out},
                   workspace);
}}

int {p}_{out}(const uint8_t *x, size_t n, {otype} *{out}, void *workspace) {{
    return {p}_run(x, NULL, 0, n, {out}, workspace);
}}

int {p}_{out}_packed(const uint64_t *words, size_t wstride, size_t n, {otype} *{out}, void *workspace) {{
    return {p}_run(NULL, words, wstride, n, {out}, workspace);
}}
""")
    if enc is not None:
        c.append(_array("int32_t", f"{p}_feature", enc.feature))
        thresholds = ",\n".join(float(t).hex() for t in enc.threshold.tolist()) or "0"
        c.append(f"static const double {p}_threshold[{max(enc.threshold.size, 1)}] = {{\n{thresholds}\n}};\n")
        c.append(f"""
void {p}_encode(const double *features, size_t n, uint8_t *x) {{
    for (size_t s = 0; s < n; s++) {{
        const double *f = features + s * {enc.num_features};
        uint8_t *row = x + s * {circuit.num_inputs};
        for (size_t i = 0; i < {circuit.num_inputs}; i++) row[i] = (uint8_t)(f[{p}_feature[i]] > {p}_threshold[i]);
    }}
}}

int {p}_{out}_features(const double *features, size_t n, {otype} *{out}, void *workspace) {{
    /* a tile of rows at a time, encoded into the workspace's tail */
    const size_t tile = (size_t)lgc_tile_samples();
    void *owned = NULL;
    uint8_t *x;
    int rc = 0;
    if (!workspace) {{
        workspace = owned = malloc({p}_workspace_bytes());
        if (!owned) return -1;
    }}
    x = (uint8_t *)workspace + {p}_kernel_bytes();
    for (size_t row0 = 0; row0 < n && rc == 0; row0 += tile) {{
        const size_t m = n - row0 < tile ? n - row0 : tile;
        {p}_encode(features + row0 * {enc.num_features}, m, x);
        rc = {p}_run(x, NULL, 0, m, {out} + row0 * {width}, workspace);
    }}
    free(owned);
    return rc;
}}
""")
    if difflogic_num_bits:
        c.append(f"""
void apply_logic_gate_net(const bool *inp, int32_t *out, size_t len) {{
    /* bool is one byte holding 0 or 1 on every ABI lgc targets; rows are read as bytes */
    (void){p}_scores((const uint8_t *)inp, len * {difflogic_num_bits}, out, NULL);
}}
""")
    return CSource("\n".join(c), header, p)


def write(circuit: Circuit, path: str | os.PathLike, *, prefix: str | None = None,
          straight_line: bool | None = None, difflogic_num_bits: int | None = None) -> None:
    """Write ``path`` (the ``.c``) and the header beside it (same stem, ``.h``)."""
    path = pathlib.Path(os.fspath(path))
    src = emit(circuit, prefix or prefix_for(path), straight_line=straight_line,
               difflogic_num_bits=difflogic_num_bits)
    path.write_text(src.c)
    path.with_suffix(".h").write_text(src.h)


def build_shared_library(circuit: Circuit, path: str | os.PathLike, *, compiler: str | None = None,
                         flags: tuple[str, ...] = ("-O2",), prefix: str = "net",
                         difflogic_num_bits: int | None = None) -> CSource:
    """Compile the emitted C into a shared library at ``path`` (an ELF ``.so`` on Linux) with
    ``compiler`` (default: the ``c`` target's, ``$LGC_CC`` or gcc); returns the source. Raises
    BuildError when the compiler is missing or fails."""
    from .._build import BuildError
    from .cpu_c import compiler as default_compiler
    cc = compiler or default_compiler()
    if cc is None:
        raise BuildError("no C compiler (gcc or cc) on PATH; set LGC_CC")
    src = emit(circuit, prefix, difflogic_num_bits=difflogic_num_bits)
    path = pathlib.Path(os.fspath(path))
    c_path = path.with_name(path.name + ".c")
    c_path.write_text(src.c)
    try:
        proc = subprocess.run([cc, *STRICT_FLAGS[:1], *flags, "-shared", "-fPIC", str(c_path), "-o", str(path)],
                              capture_output=True, text=True)
    except OSError as e:
        raise BuildError(f"cannot run {cc}: {e}") from None
    finally:
        c_path.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise BuildError(f"{os.path.basename(cc)} failed building {path}:\n{(proc.stderr or proc.stdout)[-4000:]}")
    return src
