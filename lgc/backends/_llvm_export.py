"""A circuit as an LLVM module for another machine: textual IR (``.ll``) or an object file (``.o``)
for any target triple llvmlite's LLVM supports, plus the C header stating its ABI.

The module is the ``llvm`` JIT target's kernel (:mod:`._llvm_ir`, the same emitters) with the
circuit's tables as constant data and a few exported entry points named ``<prefix>_...``
(``net_scores``, ``net_scores_packed`` or ``net_bits``, ``net_bits_packed``, ``net_encode`` with an
input encoder, ``net_workspace_bytes``). The vector width follows the target: ``+avx512f`` 8
words (and fused 3-input gates), ``+avx2`` 4, other x86-64 and aarch64 2, wasm32 2 with
``+simd128`` else 1, others 1; a named ``cpu`` alone does not widen it (pass ``features`` or
``vector_words``). The code needs no C library (no calls, no allocation: the caller passes a
workspace), so it links into bare-metal and WebAssembly programs as it is.
Cost: O(gates) text for the tables; LLVM's -O3 and code generation take about a second.
"""
from __future__ import annotations

import os
import pathlib
import re
import struct

import numpy as np

from ..ir import Circuit
from ._llvm_ir import NET_FIELDS, Spec, kernel_module, workspace_bytes


def _llvm():
    import llvmlite.binding as llvm
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    return llvm


def target_machine(triple: str | None = None, cpu: str = "", features: str = ""):
    """An llvmlite TargetMachine for ``triple`` (default: this host's) at -O3; ``cpu="native"``
    means this host's CPU and features. Raises ValueError for a triple LLVM does not know."""
    llvm = _llvm()
    triple = triple or llvm.get_process_triple()
    if cpu == "native":
        cpu, features = llvm.get_host_cpu_name(), features or llvm.get_host_cpu_features().flatten()
    try:
        target = llvm.Target.from_triple(triple)
    except RuntimeError as e:
        raise ValueError(f"LLVM does not know the target triple {triple!r}: {e}") from None
    hosted = "wasm" not in triple and "-none" not in triple and "unknown-unknown" not in triple
    return target.create_target_machine(cpu=cpu or "", features=features or "", opt=3,
                                        reloc="pic" if hosted else "static", codemodel="default"), triple


def target_spec(triple: str, features: str, datalayout: str, vector_words: int | None = None,
                fuse: bool | None = None) -> Spec:
    """Kernel parameters for a target: vector width from the triple and features, index width
    from the data layout's pointer size; 3-input gates (``fuse``) by default only where
    ``vpternlogq`` runs them (elsewhere they cost 256 small loops of code and seconds of LLVM)."""
    arch = triple.split("-")[0]
    plus = {f[1:] for f in features.split(",") if f.startswith("+")}
    if vector_words is None:
        if arch in ("x86_64", "amd64"):
            vector_words = 8 if "avx512f" in plus else 4 if "avx2" in plus else 2
        elif arch in ("aarch64", "arm64"):
            vector_words = 2
        elif arch.startswith("wasm"):
            vector_words = 2 if "simd128" in plus else 1
        else:
            vector_words = 1
    m = re.search(r"(?:^|-)p:(\d+)", datalayout)
    index_bits = int(m.group(1)) if m else 64
    ternlog = vector_words == 8 and "avx512f" in plus
    fuse = ternlog if fuse is None else bool(fuse)
    return Spec(vector_words, index_bits=index_bits, ternary=fuse, ternlog=ternlog and fuse)


def _array(name: str, ty: str, values: np.ndarray, fmt=str) -> str:
    values = np.asarray(values).ravel()
    if values.size == 0:
        return f"@{name} = internal constant [1 x {ty}] zeroinitializer, align 8"
    body = ", ".join(f"{ty} {fmt(v)}" for v in values.tolist())
    return f"@{name} = internal constant [{values.size} x {ty}] [{body}], align 8"


def _double(v: float) -> str:
    return "0x%016X" % struct.unpack("<Q", struct.pack("<d", v))[0]


def net_module(circuit: Circuit, spec: Spec, prefix: str, triple: str, datalayout: str) -> tuple[str, dict]:
    """The module's text and the facts the header states (sizes, workspace bytes)."""
    from .llvm import kernel_tables
    _, _, fields = kernel_tables(circuit, spec)
    I, p = spec.I, prefix
    lines = [kernel_module(spec, run_name=f"{p}.run", run_linkage="internal", triple=triple, datalayout=datalayout)]
    init = []
    for name, is_ptr in NET_FIELDS:
        if is_ptr:
            lines.append(_array(f"{p}.{name}", "i32", fields[name]))
            init.append(f"ptr @{p}.{name}")
        else:
            init.append(f"{I} {int(fields[name])}")
    lines.append(f"@{p}.net = internal constant %lgc_net {{ {', '.join(init)} }}")
    ws = workspace_bytes(spec, fields["n_in"], fields["n_slots"], fields["nv"], fields["k"])
    run = f"call i32 @{p}.run(ptr @{p}.net"
    if circuit.head is not None:
        lines.append(f"define i32 @{p}_scores(ptr %x, {I} %n, ptr %scores, ptr %ws) #0 {{\n"
                     f"  %r = {run}, ptr %x, ptr null, {I} 0, {I} %n, ptr %scores, ptr null, ptr %ws)\n  ret i32 %r\n}}")
        lines.append(f"define i32 @{p}_scores_packed(ptr %words, {I} %wstride, {I} %n, ptr %scores, ptr %ws) #0 {{\n"
                     f"  %r = {run}, ptr null, ptr %words, {I} %wstride, {I} %n, ptr %scores, ptr null, ptr %ws)\n"
                     f"  ret i32 %r\n}}")
    else:
        lines.append(f"define i32 @{p}_bits(ptr %x, {I} %n, ptr %bits, ptr %ws) #0 {{\n"
                     f"  %r = {run}, ptr %x, ptr null, {I} 0, {I} %n, ptr null, ptr %bits, ptr %ws)\n  ret i32 %r\n}}")
        lines.append(f"define i32 @{p}_bits_packed(ptr %words, {I} %wstride, {I} %n, ptr %bits, ptr %ws) #0 {{\n"
                     f"  %r = {run}, ptr null, ptr %words, {I} %wstride, {I} %n, ptr null, ptr %bits, ptr %ws)\n"
                     f"  ret i32 %r\n}}")
    lines.append(f"define {I} @{p}_workspace_bytes() #0 {{\n  ret {I} {ws}\n}}")
    enc = circuit.input_encoder
    if enc is not None:
        lines.append(_array(f"{p}.feature", "i32", enc.feature))
        lines.append(_array(f"{p}.threshold", "double", enc.threshold, _double))
        lines.append(_emit_encode(spec, p, circuit.num_inputs, enc.num_features))
    facts = {"workspace_bytes": ws, "num_features": enc.num_features if enc is not None else 0}
    return "\n\n".join(lines) + "\n", facts


def _emit_encode(spec: Spec, p: str, n_in: int, n_features: int) -> str:
    """``<p>_encode(features, n, bits)``: bits[r][i] = features[r][feature[i]] > threshold[i]
    (doubles; NaN gives 0)."""
    from ._llvm_ir import Fn
    I = spec.I
    f = Fn(spec, f"{p}_encode", f"ptr %features, {I} %n, ptr %bits", linkage="", attrs="#0")

    def row(r: str) -> None:
        src = f.gep("double", "%features", f(f"mul {I} {r}, {n_features}"))
        dst = f.gep("i8", "%bits", f(f"mul {I} {r}, {n_in}"))

        def bit(i: str) -> None:
            v = f.load("double", f.gep("double", src, f.index(f"@{p}.feature", i)))
            t = f.load("double", f.gep("double", f"@{p}.threshold", i))
            above = f(f"fcmp ogt double {v}, {t}")
            f.do(f"store i8 {f(f'zext i1 {above} to i8')}, ptr {f.gep('i8', dst, i)}")

        f.loop("0", str(n_in), bit)

    f.loop("0", "%n", row)
    return f.text()


def header(circuit: Circuit, spec: Spec, prefix: str, triple: str, cpu: str, features: str, facts: dict,
           artifact: str) -> str:
    """C declarations of the module's entry points, its layouts and sizes."""
    P, p = prefix.upper(), prefix
    size = "size_t"
    head = circuit.head
    lines = [
        f"/* {p}.h: the ABI of {artifact}, generated by lgc from a circuit of {circuit.num_gates} gates.",
        f" * Target: {triple}, cpu {cpu or 'generic'}, features {features or '(none)'}; vectors of",
        f" * {spec.vector_words} x 64-bit words, so the kernel runs {spec.tile} samples per step (any n works).",
        " *",
        f" * Bool input x: uint8 [n][{P}_NUM_INPUTS], row-major; any nonzero byte is 1.",
        f" * Packed input words: uint64 [{P}_NUM_INPUTS][wstride], wstride >= ceil(n / 64): sample s of input j",
        " *   is bit s % 64 of words[j * wstride + s / 64].",
    ]
    if head is not None:
        lines.append(f" * Scores: int32 [n][{P}_NUM_CLASSES]; class c's score is the popcount of its group of outputs.")
    else:
        lines.append(f" * Bits: uint8 [n][{P}_NUM_OUTPUTS], each 0 or 1.")
    if circuit.input_encoder is not None:
        lines.append(f" * {p}_encode: raw features double [n][{P}_NUM_FEATURES] -> bool input (x > threshold).")
    lines += [
        f" * workspace: {P}_WORKSPACE_BYTES bytes, any alignment, one per concurrent call. Calls return 0.",
        " */",
        f"#ifndef {P}_H",
        f"#define {P}_H",
        "#include <stddef.h>",
        "#include <stdint.h>",
        f"#define {P}_NUM_INPUTS {circuit.num_inputs}",
        f"#define {P}_HAS_HEAD {int(head is not None)}",
    ]
    if head is not None:
        lines.append(f"#define {P}_NUM_CLASSES {head.k}")
    else:
        lines.append(f"#define {P}_NUM_OUTPUTS {circuit.num_outputs}")
    if circuit.input_encoder is not None:
        lines.append(f"#define {P}_NUM_FEATURES {facts['num_features']}")
    lines += [f"#define {P}_TILE_SAMPLES {spec.tile}", f"#define {P}_VECTOR_WORDS {spec.vector_words}",
              f"#define {P}_WORKSPACE_BYTES {facts['workspace_bytes']}", "#ifdef __cplusplus", 'extern "C" {',
              "#endif"]
    if head is not None:
        lines += [f"int {p}_scores(const uint8_t *x, {size} n, int32_t *scores, void *workspace);",
                  f"int {p}_scores_packed(const uint64_t *words, {size} wstride, {size} n, int32_t *scores, "
                  "void *workspace);"]
    else:
        lines += [f"int {p}_bits(const uint8_t *x, {size} n, uint8_t *bits, void *workspace);",
                  f"int {p}_bits_packed(const uint64_t *words, {size} wstride, {size} n, uint8_t *bits, void *workspace);"]
    if circuit.input_encoder is not None:
        lines.append(f"void {p}_encode(const double *features, {size} n, uint8_t *x);")
    lines += [f"{size} {p}_workspace_bytes(void);", "#ifdef __cplusplus", "}", "#endif", f"#endif /* {P}_H */", ""]
    return "\n".join(lines)


def section_sizes(obj: bytes) -> dict:
    """Bytes of code (executable sections), constant data (``.rodata*``) and writable data
    (``.data*``, ``.bss*``) in an ELF object file, and every section by name."""
    llvm = _llvm()
    sizes = {"code": 0, "data": 0, "writable": 0}
    by_name: dict[str, int] = {}
    for sec in llvm.ObjectFileRef.from_data(obj).sections():
        name = sec.name()
        name = name.decode() if isinstance(name, bytes) else (name or "")
        size = int(sec.size())
        by_name[name] = by_name.get(name, 0) + size
        if sec.is_text():
            sizes["code"] += size
        elif name.startswith((".rodata", ".data.rel.ro")):
            sizes["data"] += size
        elif name.startswith((".data", ".bss")):
            sizes["writable"] += size
    return {**sizes, "sections": by_name}


def _prefix(path: str | os.PathLike, prefix: str | None) -> str:
    name = prefix if prefix is not None else pathlib.Path(path).stem
    name = re.sub(r"\W", "_", name)
    if not name or name[0].isdigit():
        name = "net_" + name
    return name


def export(circuit: Circuit, path: str | os.PathLike, *, kind: str, triple: str | None = None, cpu: str = "",
           features: str = "", vector_words: int | None = None, fuse: bool | None = None, prefix: str | None = None,
           header_path: str | os.PathLike | None = None) -> dict:
    """Write ``path`` (``kind`` "ll": textual IR, verified; "o": an optimised object file) and the
    header beside it (``header_path``, default ``path`` with suffix ``.h``). Returns the facts:
    triple, vector words, workspace bytes, symbols."""
    llvm = _llvm()
    triple = triple or llvm.get_process_triple()
    if triple.startswith("riscv64") and "linux" in triple and not features:
        features = "+m,+a,+f,+d,+c"  # what Linux distributions build for (rv64gc, hard-float lp64d ABI)
    tm, triple = target_machine(triple, cpu, features)
    if cpu == "native":
        cpu, features = llvm.get_host_cpu_name(), features or llvm.get_host_cpu_features().flatten()
    datalayout = str(tm.target_data)
    if datalayout.startswith("E"):
        raise ValueError(f"{triple} is big-endian; the kernel reads bit-sliced values as little-endian bytes")
    spec = target_spec(triple, features, datalayout, vector_words, fuse)
    p = _prefix(path, prefix)
    text, facts = net_module(circuit, spec, p, triple, datalayout)
    if triple.startswith("riscv"):  # the float ABI the object's ELF flags state; the linker checks it
        abi = ("lp64" if triple.startswith("riscv64") else "ilp32") + ("d" if "+d" in features else "")
        text += f'!llvm.module.flags = !{{!0}}\n!0 = !{{i32 1, !"target-abi", !"{abi}"}}\n'
    mod = llvm.parse_assembly(text)
    mod.verify()
    path = pathlib.Path(path)
    if kind == "ll":
        path.write_text(text)
    elif kind == "o":
        from .llvm import optimize_module
        optimize_module(llvm, mod, tm)
        path.write_bytes(tm.emit_object(mod))
    else:
        raise ValueError(f"unknown LLVM artifact kind {kind!r} (ll or o)")
    hpath = pathlib.Path(header_path) if header_path is not None else path.with_suffix(".h")
    hpath.write_text(header(circuit, spec, p, triple, cpu, features, facts, path.name))
    return {"triple": triple, "vector_words": spec.vector_words, "prefix": p, "header": str(hpath), **facts}
