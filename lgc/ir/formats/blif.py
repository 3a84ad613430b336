"""BLIF (Berkeley Logic Interchange Format), combinational subset: reader and writer.

Writing: inputs ``x0..``, gate ``i`` is signal ``n<node>`` with one two-input ``.names`` cover
listing both operands (even for ops that ignore one), so reading it back yields the very same
op and operands. Outputs are ``y0..``; every output gets a buffer ``.names`` after a marker
comment (BLIF cannot name an input or one signal twice as outputs, and ABC aborts on it), an
inverter (cover ``0 1``) for a negated output; an lgc-written file's reader folds those buffers
(and inverters, as negated outputs) away again, so the round trip is gate-for-gate
exact. The group-sum head and input encoder ride in a ``# lgc {...}`` JSON comment.
Writing costs one formatted line per gate (vectorised per op).

Reading any BLIF: a ``.names`` with at most two inputs becomes one gate (its truth table is the
op); larger covers (ABC's ``write_blif`` after ``map`` or ``collapse``) are decomposed into
two-input AND/OR gates (sum of products). Signals may be defined in any order; undefined
signals, double definitions and cycles raise :class:`FormatError` naming the line.
``.conn a k`` and ``.barbuf a k`` (yosys's plain connection and ABC's kept buffer) are buffers;
timing and attribute statements (``.default_input_arrival``, ``.cname``, ``.attr`` ...) are
ignored; ``.latch``, ``.subckt``, ``.gate``, ``.exdc`` and the other sequential or hierarchical
statements are refused at their line (combinational netlists only). A file lgc wrote
is read by a regular-expression fast path (seconds per million gates) that must reproduce the file
exactly; anything else takes the general line-by-line parser (about 30 s per million gates).
"""
from __future__ import annotations

import functools
import json
import os
import re
from typing import Iterable

import numpy as np

from ..._atomic import staged_path
from .. import ops as _ops
from ..circuit import Circuit, CircuitError
from .annotation import readout_from_info, readout_info
from .errors import FormatError, read_text

BUFFER_MARK = "# lgc output buffers"


def _cover(op: int) -> str:
    """On-set rows of a two-input op (a is the first column), compact where a column is ignored."""
    t = _ops.TRUTH[op]
    if op == _ops.FALSE:
        return "-- 0\n"  # an off-set row: ABC rejects a two-input .names with an empty cover
    if op == _ops.TRUE:
        return "-- 1\n"
    if _ops.IGNORES_B[op]:
        return "".join(f"{x}- 1\n" for x in (0, 1) if t[x, 0])
    if _ops.IGNORES_A[op]:
        return "".join(f"-{y} 1\n" for y in (0, 1) if t[0, y])
    return "".join(f"{x}{y} 1\n" for x in (0, 1) for y in (0, 1) if t[x, y])


_COVERS = [_cover(o) for o in range(16)]


def _comment(c: Circuit) -> str | None:
    info = readout_info(c)
    return "# lgc " + json.dumps(info, sort_keys=True) + "\n" if info else None


def _chunks(c: Circuit, model: str) -> Iterable[str]:
    n = c.num_inputs
    yield "# written by lgc\n"
    note = _comment(c)
    if note:
        yield note
    yield f".model {model}\n"
    names = [f"x{i}" for i in range(n)] + [f"n{n + i}" for i in range(c.num_gates)]
    yield ".inputs" + "".join(" " + s for s in names[:n]) + "\n"
    yield ".outputs" + "".join(f" y{j}" for j in range(c.num_outputs)) + "\n"
    covers = _COVERS
    yield "".join([f".names {names[a]} {names[b]} {names[n + i]}\n{covers[o]}"
                   for i, (o, a, b) in enumerate(zip(c.op.tolist(), c.a.tolist(), c.b.tolist()))])
    yield BUFFER_MARK + "\n"
    cover = ("1 1\n", "0 1\n")   # a negated output's buffer is an inverter
    yield "".join([f".names {names[s]} y{j}\n{cover[neg]}"
                   for j, (s, neg) in enumerate(zip(c.outputs.tolist(), c.output_negated.tolist()))])
    yield ".end\n"


def _check_model(model: str) -> str:
    if not model or any(ch.isspace() or ch == "#" for ch in model) or model.startswith("."):
        raise ValueError(f"BLIF model name {model!r} must be one word without '#' that does not start with '.'")
    return model


def dumps(circuit: Circuit, *, model: str = "lgc") -> str:
    return "".join(_chunks(circuit.validate(), _check_model(model)))


def save(circuit: Circuit, path: str | os.PathLike, *, model: str = "lgc") -> None:
    """Write ``circuit`` as a combinational BLIF model named ``model``, atomically."""
    chunks = _chunks(circuit.validate(), _check_model(model))
    with staged_path(path) as staged, open(staged, "w") as f:
        f.writelines(chunks)


def load(path: str | os.PathLike) -> Circuit:
    return loads(read_text(path), os.fspath(path))


class _Def:
    __slots__ = ("out", "ins", "rows", "line", "buffer")

    def __init__(self, out: str, ins: list[str], line: int, buffer: bool):
        self.out, self.ins, self.line, self.buffer = out, ins, line, buffer
        self.rows: list[tuple[str, str, int]] = []


def _logical_lines(text: str) -> Iterable[tuple[int, str, str]]:
    """(line number, content without comment, raw comment) with ``\\`` continuations joined."""
    pending = ""
    start = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        if not pending and "#" not in raw and not raw.endswith("\\"):
            yield lineno, raw, ""
            continue
        body, hash_, comment = raw.partition("#")
        if not pending:
            start = lineno
        if body.rstrip().endswith("\\"):
            pending += body.rstrip()[:-1] + " "
            continue
        yield start, pending + body, (hash_ + comment).strip()
        pending = ""
    if pending:
        yield start, pending, ""


_GATE_RE = re.compile(r"^\.names (\S+) (\S+) n(\d+)\n((?:[01-]{2} [01]\n)+)", re.M)
_BUF_RE = re.compile(r"^\.names (\S+) y(\d+)\n([01]) 1\n", re.M)
_OP_OF_COVER = {cover: op for op, cover in enumerate(_COVERS)}


def _node_id(name: str) -> int:
    if name[0] not in "xn" or not name[1:].isdigit():
        raise ValueError(name)
    return int(name[1:])


def _fast_lgc(text: str) -> Circuit | None:
    """An lgc-written file parsed by regular expressions, or None (then the general parser runs).

    Safe by construction: the result is written again and must reproduce ``text`` exactly."""
    if not text.startswith("# written by lgc\n"):
        return None
    head = re.search(r"^\.model (\S+)\n\.inputs(.*)\n\.outputs(.*)\n", text, re.M)
    mark = text.find("\n" + BUFFER_MARK + "\n")
    if head is None or mark < 0:
        return None
    n = len(head.group(2).split())
    try:
        gates = _GATE_RE.findall(text, head.end(), mark + 1)
        ops = [_OP_OF_COVER[g[3]] for g in gates]
        a = [_node_id(g[0]) for g in gates]
        b = [_node_id(g[1]) for g in gates]
        bufs = _BUF_RE.findall(text, mark + 1)
        outputs = [_node_id(s) for s, _, _ in bufs]
        negated = [cover == "0" for _, _, cover in bufs]
        info = {}
        note = re.search(r"^# lgc (\{.*\})$", text[:head.start()], re.M)
        if note:
            info = json.loads(note.group(1))
        group_head, enc = readout_from_info(info, len(text))
        c = Circuit(n, np.array(ops, dtype=np.int64), np.array(a, dtype=np.int64), np.array(b, dtype=np.int64),
                    np.array(outputs, dtype=np.int64), output_negated=np.array(negated, dtype=bool),
                    head=group_head, input_encoder=enc).validate()
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError, RecursionError):
        return None  # anything odd: the general parser reads it and names the line
    return c if dumps(c, model=head.group(1)) == text else None


def loads(text: str, source: str = "<blif>") -> Circuit:
    """Parse BLIF text; raises :class:`FormatError` naming the line of the first problem."""
    fast = _fast_lgc(text)
    return fast if fast is not None else parse(text, source)


def parse(text: str, source: str = "<blif>") -> Circuit:
    """The general BLIF parser (what :func:`loads` runs unless lgc's fast path applies)."""
    def fail(msg: str, line: int | None) -> FormatError:
        return FormatError(msg, source=source, line=line)

    inputs: list[str] | None = None
    input_lines: dict[str, int] = {}
    outputs: list[str] = []
    output_lines: list[int] = []
    info_line = 1
    last_line = 1
    defs: dict[str, _Def] = {}
    order: list[_Def] = []
    info: dict = {}
    lgc_written = False
    in_buffers = False
    current: _Def | None = None
    model_line = None
    ended = False
    for lineno, body, comment in _logical_lines(text):
        last_line = lineno
        if not comment:
            pass
        elif comment == "# written by lgc":
            lgc_written = True
        elif comment.startswith("# lgc {"):
            info_line = lineno
            try:
                info = json.loads(comment[6:])
            except (json.JSONDecodeError, RecursionError) as e:
                raise fail(f"bad lgc comment ({e})", lineno) from None
        elif comment == BUFFER_MARK:
            in_buffers = True
        fields = body.split()
        if not fields:
            continue
        if ended:
            if fields[0] == ".model":
                break  # further models (subcircuits) are not read
            raise fail(f"statement after .end: {body.strip()!r}", lineno)
        key = fields[0]
        if key.startswith("."):
            current = None
            if key == ".model":
                if model_line is not None:
                    raise fail("second .model without .end", lineno)
                model_line = lineno
            elif key == ".inputs":
                inputs = (inputs or []) + fields[1:]
                for name in fields[1:]:
                    if name in input_lines:
                        raise fail(f"input {name!r} listed twice (first on line {input_lines[name]})", lineno)
                    input_lines[name] = lineno
            elif key == ".outputs":
                outputs += fields[1:]
                output_lines += [lineno] * (len(fields) - 1)
            elif key == ".names":
                if len(fields) < 2:
                    raise fail(".names needs at least an output signal", lineno)
                d = _Def(fields[-1], fields[1:-1], lineno, in_buffers and lgc_written)
                if d.out in defs:
                    raise fail(f"signal {d.out!r} is defined twice (first on line {defs[d.out].line})", lineno)
                defs[d.out] = d
                order.append(d)
                current = d
            elif key in (".conn", ".barbuf"):  # a plain connection / a kept buffer: `.names a k` + `1 1`
                if len(fields) != 3:
                    raise fail(f"{key} takes a source and a target signal, got {body.strip()!r}", lineno)
                d = _Def(fields[2], [fields[1]], lineno, False)
                d.rows.append(("1", "1", lineno))
                if d.out in defs:
                    raise fail(f"signal {d.out!r} is defined twice (first on line {defs[d.out].line})", lineno)
                defs[d.out] = d
                order.append(d)
            elif key == ".end":
                ended = True
            elif key in (".latch", ".subckt", ".gate", ".mlatch", ".blackbox", ".inouts", ".start_kiss",
                         ".clock_event", ".fsm", ".short"):
                raise fail(f"{key} is not supported: lgc reads one combinational model of .names, .conn and "
                           f".barbuf statements", lineno)
            elif key in (".exdc",):
                raise fail(".exdc (external don't cares) is not supported", lineno)
            elif key in (".default_input_arrival", ".default_output_required", ".input_arrival",
                         ".output_required", ".wire_load_slope", ".area", ".delay", ".clock", ".attrib",
                         ".default_input_drive", ".default_output_load", ".input_drive", ".output_load",
                         ".default_max_input_load", ".max_input_load", ".cname", ".param", ".attr"):
                continue
            else:
                raise fail(f"unknown statement {key!r}", lineno)
            continue
        if model_line is None:
            raise fail(f"expected .model first, got {body.strip()!r}", lineno)
        if current is None:
            raise fail(f"cover row outside a .names: {body.strip()!r}", lineno)
        k = len(current.ins)
        if k == 0:
            if len(fields) != 1 or fields[0] not in ("0", "1"):
                raise fail(f"a constant .names row is a single 0 or 1, got {body.strip()!r}", lineno)
            cube, val = "", fields[0]
        else:
            if len(fields) != 2 or len(fields[0]) != k or fields[1] not in ("0", "1") \
                    or fields[0].strip("01-"):
                raise fail(f"expected a cover row of {k} characters from 0, 1, - and an output 0 or 1, "
                           f"got {body.strip()!r}", lineno)
            cube, val = fields[0], fields[1]
        if current.rows and current.rows[0][1] != val:
            raise fail("a cover mixes on-set (1) and off-set (0) rows", lineno)
        current.rows.append((cube, val, lineno))
    if model_line is None:
        raise fail("no .model found", last_line)
    if inputs is None:
        inputs = []
    return _assemble(inputs, input_lines, outputs, output_lines, defs, order, info, info_line, fail, last_line,
                     len(text))


def _assemble(inputs, input_lines, outputs, output_lines, defs, order, info, info_line, fail,
              last_line, file_bytes) -> Circuit:
    n = len(inputs)
    node: dict[str, int] = {}
    for i, s in enumerate(inputs):
        if s in defs:
            raise fail(f"input {s!r} is also driven by a .names", defs[s].line)
        node[s] = i
    ops: list[int] = []
    aa: list[int] = []
    bb: list[int] = []
    buffers: dict[str, str] = {}

    def emit(op: int, a: int, b: int) -> int:
        ops.append(op)
        aa.append(a)
        bb.append(b)
        return n + len(ops) - 1

    const_nodes: dict[int, int] = {}

    def const(v: int) -> int:
        if v not in const_nodes:  # operand 0 is legal for a constant gate, inputs or not
            const_nodes[v] = emit(15 if v else 0, 0, 0)
        return const_nodes[v]

    # an lgc output buffer with cover `0 1` that no .names reads is a negated output, not a gate
    read = {sig for d in order for sig in d.ins}
    inverted: dict[str, int] = {}
    define = functools.partial(_define, node=node, buffers=buffers, emit=emit, const=const, fail=fail, n=n,
                               inverted=inverted, read=read)
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for root in order:
        if root.out in node or root.out in buffers:
            continue
        if all(s in node for s in root.ins):  # fast path: definitions in topological order
            define(root)
            continue
        stack = [(root, 0)]
        state[root.out] = 1
        while stack:
            d, _ = stack[-1]
            pending = None
            for s in d.ins:
                if s in node:
                    continue
                if s not in defs:
                    raise fail(f"signal {s!r} is used but never defined", d.line)
                if state.get(s) == 1:
                    raise fail(f"combinational cycle through signal {s!r}", defs[s].line)
                pending = defs[s]
                break
            if pending is not None:
                state[pending.out] = 1
                stack.append((pending, 0))
                continue
            stack.pop()
            state[d.out] = 2
            define(d)
    out_nodes = []
    for s, line in zip(outputs, output_lines):
        if s not in node:
            raise fail(f"output {s!r} is never defined", line)
        out_nodes.append(node[s])
    negated = np.array([s in inverted for s in outputs], dtype=bool)
    try:
        head, encoder = readout_from_info(info, file_bytes)
    except (CircuitError, KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise fail(f"bad lgc comment ({e})", info_line) from None
    try:
        return Circuit(n, np.array(ops, dtype=np.int64), np.array(aa, dtype=np.int64), np.array(bb, dtype=np.int64),
                       np.array(out_nodes, dtype=np.int64), output_negated=negated, head=head,
                       input_encoder=encoder).validate()
    except CircuitError as e:
        raise fail(str(e), info_line if "head" in str(e) or "encoder" in str(e) else last_line) from None


def _define(d: _Def, node: dict, buffers: dict, emit, const, fail, n: int, inverted: dict, read: set) -> None:
    covers = [r[:2] for r in d.rows] if d.buffer and len(d.ins) == 1 else None
    if covers == [("1", "1")]:
        buffers[d.out] = d.ins[0]
        node[d.out] = node[d.ins[0]]
    elif covers == [("0", "1")] and d.out not in read:
        inverted[d.out] = node[d.out] = node[d.ins[0]]   # only outputs read it: node[] means NOT node
    else:
        node[d.out] = _lower_cover(d, [node[s] for s in d.ins], emit, const, fail, n)


_OP_CACHE: dict[tuple, int] = {}


def _small_op(k: int, rows: list[tuple[str, str, int]]) -> int:
    """The op code (truth table over a, b) of a cover with k <= 2 inputs."""
    key = (k, tuple(r[:2] for r in rows))
    op = _OP_CACHE.get(key)
    if op is not None:
        return op
    onset = not rows or rows[0][1] == "1"
    table = np.zeros((2, 2), dtype=bool)
    for cube, _, _ in rows:
        for x in (0, 1):
            for y in (0, 1):
                if all(ch == "-" or int(ch) == bit for ch, bit in zip(cube, (x, y)[:k])):
                    table[x, y] = True
    if not onset:
        table = ~table
    op = int(_ops.truth_table_code(table.astype(np.uint8)[None])[0])
    if len(_OP_CACHE) < 4096:
        _OP_CACHE[key] = op
    return op


def _lower_cover(d: _Def, ins: list[int], emit, const, fail, n: int) -> int:
    """The node computing a .names cover: one gate for <= 2 inputs, else a sum of products."""
    k = len(ins)
    onset = not d.rows or d.rows[0][1] == "1"
    if k <= 2:
        op = _small_op(k, d.rows)
        if k == 0:  # a constant: operand 0 is legal for it even without inputs
            return emit(op, 0, 0)
        a = ins[0]
        b = ins[1] if k == 2 else ins[0]
        return emit(op, a, b)
    # sum of products: AND the literals of each cube, OR the cubes, complement for an off-set
    terms: list[int] = []
    for cube, _, line in d.rows:
        lits = [(ins[i], ch == "0") for i, ch in enumerate(cube) if ch != "-"]
        if not lits:
            terms = [const(1)]
            break
        acc, neg = lits[0]
        for node_id, neg2 in lits[1:]:
            acc = emit(int(_AND_BY_NEG[neg][neg2]), acc, node_id)
            neg = False
        if neg:
            acc = emit(12, acc, acc)
        terms.append(acc)
    if not terms:
        out = const(0)
    else:
        out = terms[0]
        for t in terms[1:]:
            out = emit(7, out, t)
    if not onset:
        out = emit(12, out, out)
    return out


_AND_BY_NEG = [[1, 2], [4, 8]]
