"""AIGER 1.9 (combinational subset): ASCII ``aag`` and binary ``aig``, reader and writer.

Writing maps every gate onto AND gates with complemented edges: AND-like ops (1, 2, 4, 8) are
one AND, OR-like ops (7, 11, 13, 14) one AND with a complemented output, XOR/XNOR three ANDs;
constants, copies and inverters (0, 3, 5, 10, 12, 15) are literals and cost no AND. Everything
is whole-array numpy work (pass-through chains are resolved by pointer jumping), so millions of
gates take seconds.

Reading gives an AND/inverter Circuit: one gate per AND (op 1, 2, 4 or 8 by its edge
complements), a constant-FALSE gate first when an AND reads literal 0/1, and NOT or constant
gates at the end for complemented or constant outputs. Writing that circuit reproduces the file
byte for byte. A circuit's negated outputs are written as complemented output literals. Inputs
and outputs get symbols ``x<i>`` and ``y<j>`` (the BLIF names), and lgc writes its group-sum
head and input encoder as one JSON comment line (``lgc {...}``) and restores them on read.
Latches, bad-state, constraint, justice and fairness sections are rejected (lgc circuits are
combinational). A file with no inputs (``aag 0 0 0 1 0`` / ``1``, as SMT tools write) reads as a
circuit of constant gates.

Untrusted input: a binary file's implicit input count obeys :mod:`lgc.ir.limits`, its outputs and
ANDs must fit in the bytes left, ASCII lines are read until the file ends, and variables are
mapped by binary search, so memory follows the file, never the header's M.
"""
from __future__ import annotations

import json
import os

import numpy as np

from ..._atomic import write_atomic
from .. import ops as _ops
from ..circuit import Circuit, CircuitError
from ..limits import check_backed, check_claim
from .annotation import readout_from_info, readout_info
from .errors import FormatError

# per op: number of ANDs, complement of operand a / b in the (first) AND, complement of the output
# (checked against lgc.ir.ops.TRUTH in tests/test_gate_tables.py)
_NANDS = np.array([0, 1, 1, 0, 1, 0, 3, 1, 1, 3, 0, 1, 0, 1, 1, 0], dtype=np.int64)
_NEG_A = np.array([0, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0], dtype=np.int64)
_NEG_B = np.array([0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 0], dtype=np.int64)
_NEG_OUT = np.array([0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1], dtype=np.int64)
# AND-gate op by (complement of rhs0, complement of rhs1): a & b, a & ~b, ~a & b, ~a & ~b
_AND_OP = np.array([[1, 2], [4, 8]], dtype=np.uint8)


def _to_aig(c: Circuit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ANDs as int64 [A, 3] rows lhs, rhs0, rhs1 with rhs0 >= rhs1; output literals; M)."""
    n, g = c.num_inputs, c.num_gates
    op = c.op.astype(np.int64)
    a = c.a.astype(np.int64)
    b = c.b.astype(np.int64)
    nands = _NANDS[op]
    first_var = n + 1 + np.cumsum(nands) - nands  # variable of each gate's first AND
    last_var = first_var + nands - 1
    lit = np.zeros(n + g, dtype=np.int64)
    lit[:n] = 2 * (np.arange(n) + 1)
    glit = np.where(nands > 0, 2 * last_var, 0) ^ _NEG_OUT[op]
    # copies and inverters: point at the operand, resolved below by pointer jumping
    src = np.full(g, -1, dtype=np.int64)
    one_input = _ops.IGNORES_A[op] != _ops.IGNORES_B[op]        # A, B, NOT_A, NOT_B
    src[one_input & _ops.IGNORES_B[op]] = a[one_input & _ops.IGNORES_B[op]]
    src[one_input & _ops.IGNORES_A[op]] = b[one_input & _ops.IGNORES_A[op]]
    neg = _NEG_OUT[op].copy()  # complement relative to the source (NOT_A, NOT_B invert)
    passthru = src >= 0
    node_src = np.arange(n + g, dtype=np.int64)
    node_neg = np.zeros(n + g, dtype=np.int64)
    node_src[n:][passthru] = src[passthru]
    node_neg[n:][passthru] = neg[passthru]
    while True:  # pointer jumping: O(log chain) rounds
        nxt = node_src[node_src]
        if np.array_equal(nxt, node_src):
            break
        node_neg = node_neg ^ node_neg[node_src]
        node_src = nxt
    lit[n:] = glit
    lit = lit[node_src] ^ node_neg
    # AND rows
    la = lit[a] if g else a
    lb = lit[b] if g else b
    one = nands == 1
    r0 = np.stack([2 * first_var[one], la[one] ^ _NEG_A[op[one]], lb[one] ^ _NEG_B[op[one]]], axis=1)
    three = np.flatnonzero(nands == 3)
    v = first_var[three]
    x, y = la[three], lb[three]
    r1 = np.stack([2 * v, x, y ^ 1], axis=1)
    r2 = np.stack([2 * (v + 1), x ^ 1, y], axis=1)
    r3 = np.stack([2 * (v + 2), 2 * v + 1, 2 * (v + 1) + 1], axis=1)
    rows = np.concatenate([r0, r1, r2, r3]) if g else np.zeros((0, 3), dtype=np.int64)
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    hi = np.maximum(rows[:, 1], rows[:, 2])
    lo = np.minimum(rows[:, 1], rows[:, 2])
    rows[:, 1], rows[:, 2] = hi, lo
    m = n + int(nands.sum())
    return rows, lit[c.outputs.astype(np.int64)] ^ c.output_negated.astype(np.int64), np.int64(m)


def _comment(c: Circuit) -> str | None:
    info = readout_info(c)
    return "lgc " + json.dumps(info, sort_keys=True) if info else None


def _join(values: np.ndarray, fmt_cols: int) -> str:
    if values.size == 0:
        return ""
    rows = values.reshape(-1, fmt_cols).astype(str)
    return "\n".join(" ".join(r) for r in rows.tolist()) + "\n"


def dumps(circuit: Circuit, *, binary: bool = False) -> bytes:
    """The AIGER bytes of ``circuit`` (``aag`` text, or ``aig`` when ``binary``)."""
    c = circuit.validate()
    rows, outs, m = _to_aig(c)
    n, a_count, o_count = c.num_inputs, len(rows), len(outs)
    parts: list[bytes] = []
    if binary:
        parts.append(f"aig {m} {n} 0 {o_count} {a_count}\n".encode())
        parts.append(_join(outs, 1).encode())
        d0 = rows[:, 0] - rows[:, 1]
        d1 = rows[:, 1] - rows[:, 2]
        parts.append(_encode_varints(np.stack([d0, d1], axis=1).ravel()))
    else:
        parts.append(f"aag {m} {n} 0 {o_count} {a_count}\n".encode())
        parts.append(_join(2 * (np.arange(n, dtype=np.int64) + 1), 1).encode())
        parts.append(_join(outs, 1).encode())
        parts.append(_join(rows.ravel(), 3).encode())
    # symbol table: the BLIF and Verilog names (x<i>, y<j>), so tools match ports by name
    parts.append("".join([f"i{i} x{i}\n" for i in range(n)] + [f"o{j} y{j}\n" for j in range(o_count)]).encode())
    note = _comment(c)
    if note is not None:
        parts.append(b"c\n" + note.encode() + b"\n")
    return b"".join(parts)


def _encode_varints(values: np.ndarray) -> bytes:
    """AIGER's 7-bit little-endian varints, vectorised."""
    values = values.astype(np.uint64)
    if values.size == 0:
        return b""
    nbytes = np.ones(values.size, dtype=np.int64)
    v = values >> np.uint64(7)
    while v.any():
        nbytes += v > 0
        v = v >> np.uint64(7)
    starts = np.cumsum(nbytes) - nbytes
    total = int(nbytes.sum())
    owner = np.repeat(np.arange(values.size), nbytes)
    pos = np.arange(total) - starts[owner]
    chunk = (values[owner] >> (np.uint64(7) * pos.astype(np.uint64))) & np.uint64(0x7F)
    more = pos < (nbytes[owner] - 1)
    return (chunk | (more.astype(np.uint64) << np.uint64(7))).astype(np.uint8).tobytes()


def _decode_varints(buf: np.ndarray, count: int) -> tuple[np.ndarray, int] | None:
    """The first ``count`` varints of ``buf`` and the bytes they used, or None when truncated."""
    if count == 0:
        return np.zeros(0, dtype=np.int64), 0
    ends = np.flatnonzero((buf & 0x80) == 0)
    if ends.size < count:
        return None
    used = int(ends[count - 1]) + 1
    data = buf[:used].astype(np.uint64)
    group = np.zeros(used, dtype=np.int64)
    group[ends[:count - 1] + 1] = 1
    group = np.cumsum(group)
    starts = np.concatenate([[0], ends[:count - 1] + 1])
    pos = (np.arange(used) - starts[group]).astype(np.uint64)
    if pos.size and pos.max() > 9:
        raise ValueError("varint longer than 64 bits")
    vals = np.zeros(count, dtype=np.uint64)
    np.add.at(vals, group, (data & np.uint64(0x7F)) << (np.uint64(7) * pos))
    return vals.astype(np.int64), used


def loads(data: bytes | str, source: str = "<aiger>") -> Circuit:
    """Parse ``aag`` or ``aig`` bytes; raises :class:`FormatError` naming the line of the first problem."""
    if isinstance(data, str):
        data = data.encode()
    nl = data.find(b"\n")
    header_raw = data[: nl if nl >= 0 else len(data)]

    def fail(msg: str, line: int | None) -> FormatError:
        return FormatError(msg, source=source, line=line)

    try:
        header = header_raw.decode("ascii").split()
    except UnicodeDecodeError:
        raise fail("header is not ASCII; expected 'aag M I L O A' or 'aig M I L O A'", 1) from None
    if not header or header[0] not in ("aag", "aig"):
        raise fail(f"expected 'aag M I L O A' or 'aig M I L O A', got {header_raw[:40]!r}", 1)
    if not 6 <= len(header) <= 10 or not all(h.isdigit() for h in header[1:]):
        raise fail(f"malformed header {header_raw.decode(errors='replace')!r}", 1)
    m, i_count, l_count, o_count, a_count, *extra = map(int, header[1:])
    if l_count:
        raise fail(f"{l_count} latches: lgc reads combinational AIGER only", 1)
    if any(extra):
        raise fail("bad-state/constraint/justice/fairness sections are not supported", 1)
    binary = header[0] == "aig"
    if binary and m != i_count + a_count:
        raise fail(f"binary AIGER needs M = I + L + A, got M={m} I={i_count} A={a_count}", 1)
    pos = nl + 1 if nl >= 0 else len(data)
    line = 1
    # every count is checked against the bytes that must hold it before anything is allocated
    left = len(data) - pos
    claim = lambda msg: fail(msg, 1)  # noqa: E731
    if binary:  # inputs are implicit; each output is a line ("2\n"), each AND two varints
        check_claim("I", i_count, len(data), claim)
        check_backed("O", o_count, left, 2, claim)
        check_backed("A", a_count, left - 2 * o_count, 2, claim)
    # ASCII counts are backed by lines, read one at a time until the file ends (no allocation up front)
    check_claim("M", m, len(data) + 8 * (i_count + a_count), claim)

    def read_lines(count: int, what: str, width: int) -> np.ndarray:
        fast = _fast_lines(data, pos, count, width, m)
        if fast is not None:
            return fast_done(fast, count)
        return slow_lines(count, what, width)

    def fast_done(fast: tuple[np.ndarray, int], count: int) -> np.ndarray:
        nonlocal pos, line
        pos, line = fast[1], line + count
        return fast[0]

    def slow_lines(count: int, what: str, width: int) -> np.ndarray:
        nonlocal pos, line
        out = []
        for k in range(count):
            line += 1
            end = data.find(b"\n", pos)
            if end < 0:
                end = len(data)
                if pos >= end:
                    raise fail(f"file ends early: expected {count} {what} lines, got {k}", line)
            fields = data[pos:end].split()
            pos = end + 1
            if len(fields) < width or not all(f.isdigit() for f in fields[:width]):
                raise fail(f"expected {width} literal(s) on {what} line {b' '.join(fields).decode(errors='replace')!r}",
                           line)
            vals = [int(f) for f in fields[:width]]
            if len(fields) > width and what != "output":
                raise fail(f"bad {what} line {b' '.join(fields).decode(errors='replace')!r}", line)
            if any(v > 2 * m + 1 for v in vals):
                raise fail(f"literal {max(vals)} exceeds 2*M+1 = {2 * m + 1}", line)
            out.append(vals)
        return np.array(out, dtype=np.int64).reshape(count, width)

    if binary:
        in_lits = 2 * (np.arange(i_count, dtype=np.int64) + 1)
        out_lits = read_lines(o_count, "output", 1)[:, 0]
        first_and_line = line + 1
        buf = np.frombuffer(data, dtype=np.uint8, offset=pos) if pos < len(data) else np.zeros(0, np.uint8)
        try:
            dec = _decode_varints(buf, 2 * a_count)
        except ValueError as e:
            raise fail(str(e), first_and_line) from None
        if dec is None:
            raise fail(f"binary AND section truncated: expected {a_count} AND gates", first_and_line)
        deltas, used = dec
        pos += used
        lhs = 2 * (i_count + 1 + np.arange(a_count, dtype=np.int64))
        d0, d1 = deltas[0::2], deltas[1::2]
        rhs0 = lhs - d0
        rhs1 = rhs0 - d1
        bad = np.flatnonzero((d0 <= 0) | (rhs1 < 0))
        if bad.size:
            raise fail(f"AND gate {int(bad[0])} (literal {int(lhs[bad[0]])}) has invalid deltas "
                       f"({int(d0[bad[0]])}, {int(d1[bad[0]])})", first_and_line)
        ands = np.stack([lhs, rhs0, rhs1], axis=1)
        and_lines = np.full(a_count, first_and_line)
    else:
        in_lits = read_lines(i_count, "input", 1)[:, 0]
        out_lits = read_lines(o_count, "output", 1)[:, 0]
        first_and_line = line + 1
        ands = read_lines(a_count, "AND", 3)
        and_lines = first_and_line + np.arange(a_count)
    comment = _read_trailer(data[pos:], fail)
    first_out_line = 2 + (0 if binary else i_count)
    return _build(i_count, m, in_lits, out_lits, ands, and_lines, comment, fail, first_out_line, len(data))


def _fast_lines(data: bytes, pos: int, count: int, width: int, m: int) -> tuple[np.ndarray, int] | None:
    """``count`` lines of exactly ``width`` numbers each, parsed at once; None when anything is off
    (the caller then re-reads line by line to name the bad line)."""
    if count == 0:
        return np.zeros((0, width), dtype=np.int64), pos
    buf = np.frombuffer(data, dtype=np.uint8, offset=pos) if pos < len(data) else np.zeros(0, np.uint8)
    newlines = np.flatnonzero(buf == 10)
    if newlines.size < count:
        return None
    end = int(newlines[count - 1])
    seg = buf[:end]
    space = (seg == 32) | (seg == 10) | (seg == 9) | (seg == 13)
    digit = (seg >= 48) & (seg <= 57)
    if not (space | digit).all():
        return None
    starts = digit & np.concatenate([[True], space[:-1]]) if seg.size else digit
    line_of = np.cumsum(seg == 10)
    if not (np.bincount(line_of[starts], minlength=count) == width).all():
        return None
    try:
        values = np.array(data[pos:pos + end].split(), dtype=np.int64)
    except (ValueError, OverflowError):
        return None
    if values.size != count * width or (values > 2 * m + 1).any():
        return None
    return values.reshape(count, width), pos + end + 1


def _read_trailer(rest: bytes, fail) -> dict:
    """The lgc JSON comment, if present (symbols and other comments are ignored); a damaged one raises."""
    idx = rest.find(b"\nc\n") if not rest.startswith(b"c\n") else -1
    body = rest[2:] if rest.startswith(b"c\n") else (rest[idx + 3:] if idx >= 0 else b"")
    for raw in body.splitlines():
        if raw.startswith(b"lgc {"):
            try:
                info = json.loads(raw[4:].decode())
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
                raise fail(f"bad lgc comment ({e})", None) from None
            return info
    return {}


class _VarMap:
    """Node id of each defined AIGER variable, by binary search: memory follows the lines, not M."""

    def __init__(self, variables: np.ndarray, nodes: np.ndarray):
        order = np.argsort(variables, kind="stable")
        self.keys, self.nodes = variables[order], nodes[order]

    def __call__(self, v: np.ndarray) -> np.ndarray:
        """Node per variable in ``v``; -1 where undefined."""
        if self.keys.size == 0:
            return np.full(np.shape(v), -1, dtype=np.int64)
        idx = np.minimum(np.searchsorted(self.keys, v), self.keys.size - 1)
        return np.where(self.keys[idx] == v, self.nodes[idx], -1)


def _build(i_count, m, in_lits, out_lits, ands, and_lines, comment, fail, first_out_line, file_bytes) -> Circuit:
    n = int(i_count)
    # inputs
    bad = np.flatnonzero((in_lits % 2 == 1) | (in_lits < 2))
    if bad.size:
        raise fail(f"input literal {int(in_lits[bad[0]])} must be even and not a constant", 2 + int(bad[0]))
    in_vars = in_lits // 2
    if np.unique(in_vars).size != in_vars.size:
        k = int(np.flatnonzero(np.diff(np.sort(in_vars)) == 0)[0])
        raise fail(f"input variable {int(np.sort(in_vars)[k])} is defined twice", None)
    input_node = _VarMap(in_vars, np.arange(n))
    a_count = len(ands)
    lhs, rhs0, rhs1 = ands[:, 0], ands[:, 1], ands[:, 2]
    bad = np.flatnonzero((lhs % 2 == 1) | (lhs < 2))
    if bad.size:
        raise fail(f"AND left-hand side {int(lhs[bad[0]])} must be even and not a constant", int(and_lines[bad[0]]))
    lvar = lhs // 2
    seen = input_node(lvar) >= 0
    if seen.any() or np.unique(lvar).size != lvar.size:
        k = int(np.flatnonzero(seen)[0]) if seen.any() else int(np.flatnonzero(np.diff(np.sort(lvar)) == 0)[0])
        raise fail(f"variable {int(lvar[k])} is defined twice", int(and_lines[k]))
    # order: ANDs must be topologically sorted; sort if needed (ASCII allows any order)
    order = _topo_order(lvar, rhs0 // 2, rhs1 // 2, and_lines, fail)
    lvar, rhs0, rhs1 = lvar[order], rhs0[order], rhs1[order]
    uses_const = bool(a_count and ((rhs0 < 2).any() or (rhs1 < 2).any()))
    const_gate = n if uses_const else -1
    first = n + (1 if uses_const else 0)
    node_of_var = _VarMap(np.concatenate([in_vars, lvar]), np.concatenate([np.arange(n), first + np.arange(a_count)]))
    ops: list[np.ndarray] = []
    aa: list[np.ndarray] = []
    bb: list[np.ndarray] = []
    if uses_const:  # constant gates ignore their operands; node 0 is always a legal one
        ops.append(np.array([0]))
        aa.append(np.array([0]))
        bb.append(np.array([0]))
    if a_count:
        na = node_of_var(rhs0 // 2)
        nb = node_of_var(rhs1 // 2)
        na = np.where(rhs0 // 2 == 0, const_gate, na)
        nb = np.where(rhs1 // 2 == 0, const_gate, nb)
        undefined = np.flatnonzero((na < 0) | (nb < 0))
        if undefined.size:
            k = int(undefined[0])
            lit = int(rhs0[k] if na[k] < 0 else rhs1[k])
            raise fail(f"AND gate reads undefined literal {lit}", int(and_lines[order[k]]))
        ops.append(_AND_OP[rhs0 % 2, rhs1 % 2])
        aa.append(na)
        bb.append(nb)
    # outputs
    out_lits = np.asarray(out_lits, dtype=np.int64)
    total = first + a_count
    outputs = np.zeros(out_lits.size, dtype=np.int64)
    ovar = out_lits // 2
    onode = np.where(ovar == 0, -2, node_of_var(ovar))
    if (onode == -1).any():
        k = int(np.flatnonzero(onode == -1)[0])
        raise fail(f"output reads undefined literal {int(out_lits[k])}", first_out_line + k)
    extra_lits = np.unique(out_lits[(out_lits % 2 == 1) | (ovar == 0)])
    extra_nodes = total + np.arange(extra_lits.size)
    plain = (out_lits % 2 == 0) & (ovar != 0)
    outputs[plain] = onode[plain]
    if extra_lits.size:
        outputs[~plain] = extra_nodes[np.searchsorted(extra_lits, out_lits[~plain])]
        ev = extra_lits // 2
        src = np.where(ev == 0, 0, node_of_var(ev))
        ops.append(np.where(ev == 0, np.where(extra_lits == 0, 0, 15), 12).astype(np.uint8))
        aa.append(src)
        bb.append(src)
    try:
        head, encoder = readout_from_info(comment, file_bytes)
    except (CircuitError, KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise fail(f"bad lgc comment ({e})", None) from None
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    try:
        return Circuit(n, cat(ops, np.uint8), cat(aa, np.int64), cat(bb, np.int64), outputs,
                       head=head, input_encoder=encoder).validate()
    except CircuitError as e:
        raise fail(str(e), None) from None


def _topo_order(lvar, v0, v1, and_lines, fail) -> np.ndarray:
    """Indices of the ANDs in a topological order (identity when already ordered); cycles raise."""
    a_count = lvar.size
    if a_count == 0:
        return np.zeros(0, dtype=np.int64)
    position = _VarMap(lvar, np.arange(a_count))
    p0, p1 = position(v0), position(v1)
    if ((p0 < np.arange(a_count)) & (p1 < np.arange(a_count))).all():
        return np.arange(a_count)
    # Kahn's algorithm over AND -> AND edges
    deps = [[int(p) for p in (p0[k], p1[k]) if p >= 0] for k in range(a_count)]
    users: list[list[int]] = [[] for _ in range(a_count)]
    indeg = np.zeros(a_count, dtype=np.int64)
    for k, ds in enumerate(deps):
        for d in ds:
            users[d].append(k)
            indeg[k] += 1
    ready = [k for k in range(a_count) if indeg[k] == 0]
    out: list[int] = []
    while ready:
        k = ready.pop()
        out.append(k)
        for u in users[k]:
            indeg[u] -= 1
            if indeg[u] == 0:
                ready.append(u)
    if len(out) < a_count:
        k = int(np.flatnonzero(indeg > 0)[0])
        raise fail(f"combinational cycle through AND literal {2 * int(lvar[k])}", int(and_lines[k]))
    return np.array(out, dtype=np.int64)


def save(circuit: Circuit, path: str | os.PathLike, *, binary: bool | None = None) -> None:
    """Write ``.aig`` (binary) or ``.aag`` (ASCII); ``binary`` defaults from the suffix."""
    if binary is None:
        binary = not os.fspath(path).lower().endswith(".aag")
    write_atomic(path, dumps(circuit, binary=binary))


def load(path: str | os.PathLike) -> Circuit:
    with open(path, "rb") as f:
        return loads(f.read(), os.fspath(path))
