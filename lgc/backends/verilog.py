"""Verilog export: one synthesizable module, one ``assign`` (a ``wire`` declaration) per gate.

Ports: ``input wire [num_inputs-1:0] x`` (bit i = input i; the module takes *bits*: an input
encoder, if the circuit has one, is not emitted, binarise features before the module) and
``output wire [O-1:0] y`` (bit j = output j; a negated output is written ``~g<node>``). With a group-sum head also
``output wire [k*W-1:0] scores`` (class c in bits ``[c*W +: W]``, W = ceil(log2(group+1)), each
a balanced popcount adder tree over its group) and ``output wire [..] class_index`` (argmax by
a tournament of comparators; the lowest index wins ties, as everywhere in lgc).

``pipeline_every=N`` registers every N levels (``lgc.ir.levels``): ports ``clk``, ``rst``
(synchronous, clears the valid chain only), ``valid_in`` and ``valid_out``. A value crossing a
stage boundary is registered once per boundary; y is registered after the last stage, so the
latency is ``ceil(depth / N)`` clock cycles (at least 1) from x/valid_in to y/valid_out; the head
(scores, class_index) is combinational on the registered y, valid in the same cycle as y.

Text is generated per op with one template each (Python string joins over whole arrays), so a
million gates take a few seconds.
"""
from __future__ import annotations

import math
import os
import re

import numpy as np

from ..ir import Circuit, levels, used_operands

FORMAT = "verilog"
SUFFIXES = (".v", ".sv")

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")
#: reserved words of IEEE 1364-2005 (Verilog) Annex B
VERILOG_2005_KEYWORDS = frozenset("""
always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config deassign default defparam
design disable edge else end endcase endconfig endfunction endgenerate endmodule endprimitive endspecify endtable
endtask event for force forever fork function generate genvar highz0 highz1 if ifnone incdir include initial inout
input instance integer join large liblist library localparam macromodule medium module nand negedge nmos nor
noshowcancelled not notif0 notif1 or output parameter pmos posedge primitive pull0 pull1 pulldown pullup
pulsestyle_ondetect pulsestyle_onevent rcmos real realtime reg release repeat rnmos rpmos rtran rtranif0 rtranif1
scalared showcancelled signed small specify specparam strong0 strong1 supply0 supply1 table task time tran tranif0
tranif1 tri tri0 tri1 triand trior trireg unsigned use uwire vectored wait wand weak0 weak1 while wire wor xnor xor
""".split())
#: reserved words of IEEE 1800-2017 (SystemVerilog) Annex B (a superset of 1364-2005's)
SYSTEMVERILOG_2017_KEYWORDS = VERILOG_2005_KEYWORDS | frozenset("""
accept_on alias always_comb always_ff always_latch assert assume before bind bins binsof bit break byte chandle
checker class clocking const constraint context continue cover covergroup coverpoint cross dist do endchecker
endclass endclocking endgroup endinterface endpackage endprogram endproperty endsequence enum eventually expect
export extends extern final first_match foreach forkjoin global iff ignore_bins illegal_bins implements implies
import inside int interconnect interface intersect join_any join_none let local logic longint matches modport
nettype new nexttime null package packed priority program property protected pure rand randc randcase
randsequence ref reject_on restrict return s_always s_eventually s_nexttime s_until s_until_with sequence shortint
shortreal soft solve static string strong struct super sync_accept_on sync_reject_on tagged this throughout
timeprecision timeunit type typedef union unique unique0 until until_with untyped var virtual void wait_order weak
wildcard with within
""".split())
_KEYWORDS = SYSTEMVERILOG_2017_KEYWORDS
#: IEEE 1364-2005 3.7: tools must accept identifiers of at least 1024 characters
MAX_IDENTIFIER = 1024


def check_identifier(name: str, what: str = "module name") -> str:
    """``name`` when it is a simple identifier legal in both IEEE 1364-2005 and 1800-2017; else ValueError."""
    if not isinstance(name, str) or not _IDENT.match(name) or len(name) > MAX_IDENTIFIER:
        raise ValueError(f"{what} {name!r} is not a Verilog identifier (a letter or _, then letters, digits, _ or $; "
                         f"at most {MAX_IDENTIFIER} characters)")
    if name in _KEYWORDS:
        std = "IEEE 1364-2005 Verilog" if name in VERILOG_2005_KEYWORDS else "IEEE 1800-2017 SystemVerilog"
        raise ValueError(f"{what} {name!r} is not a legal identifier: a reserved word of {std}; choose another "
                         f"(e.g. {name + '_net'!r})")
    return name


def _y_assign(c: Circuit, name) -> str:
    """``assign y = {...};`` with output j in bit j; a negated output is ``~name`` (synthesis
    absorbs the inverter into the head's adders or the reading logic)."""
    bits = [("~" if neg else "") + name(node)
            for node, neg in zip(c.outputs[::-1].tolist(), c.output_negated[::-1].tolist())]
    return f"assign y = {{{', '.join(bits)}}};"


def score_width(circuit: Circuit) -> int:
    """Bits per class score: ceil(log2(group + 1)) (at least 1)."""
    per = circuit.num_outputs // circuit.head.k if circuit.head is not None else 0
    return max(1, math.ceil(math.log2(per + 1)))


def index_width(circuit: Circuit) -> int:
    return max(1, math.ceil(math.log2(circuit.head.k))) if circuit.head is not None else 0


def pipeline_latency(circuit: Circuit, pipeline_every: int) -> int:
    """Clock cycles from x to y in the pipelined module."""
    lv = levels(circuit)
    depth = int(lv.max()) if lv.size else 0
    return max(1, math.ceil(depth / pipeline_every))


def _gate_lines(c: Circuit, a_names: list[str], b_names: list[str], gate_name: list[str]) -> list[str]:
    """``wire gN = expr;`` for every gate, in node order: one %-template per op (``%.0s`` swallows
    an ignored operand), applied in one pass over the gates."""
    return [_TEMPLATES[o] % t for o, t in zip(c.op.tolist(), zip(gate_name, a_names, b_names))]


_TEMPLATES = [  # args: gate, a, b
    "wire %s = 1'b0%.0s%.0s;", "wire %s = %s & %s;", "wire %s = %s & ~%s;", "wire %s = %s%.0s;",
    "wire %s = ~%s & %s;", "wire %s = %.0s%s;", "wire %s = %s ^ %s;", "wire %s = %s | %s;",
    "wire %s = ~(%s | %s);", "wire %s = ~(%s ^ %s);", "wire %s = %.0s~%s;", "wire %s = %s | ~%s;",
    "wire %s = ~%s%.0s;", "wire %s = ~%s | %s;", "wire %s = ~(%s & %s);", "wire %s = 1'b1%.0s%.0s;"]


def _popcount_tree(bits: list[str]) -> str:
    if not bits:
        return "1'b0"
    if len(bits) == 1:
        return bits[0]
    mid = len(bits) // 2
    return f"({_popcount_tree(bits[:mid])} + {_popcount_tree(bits[mid:])})"


def _head_lines(c: Circuit, y: str) -> tuple[list[str], list[str]]:
    """(port declarations, body lines) for scores and class_index."""
    k = c.head.k
    per = c.num_outputs // k
    w, iw = score_width(c), index_width(c)
    ports = [f"output wire [{k * w - 1}:0] scores", f"output wire [{iw - 1}:0] class_index"]
    body = []
    for cls in range(k):
        bits = [f"{{{{{w - 1}{{1'b0}}}}, {y}[{cls * per + j}]}}" if w > 1 else f"{y}[{cls * per + j}]"
                for j in range(per)]
        body.append(f"wire [{w - 1}:0] s{cls} = {_popcount_tree(bits) if bits else f'{w}' + chr(39) + 'd0'};")
        body.append(f"assign scores[{cls * w + w - 1}:{cls * w}] = s{cls};")
    # tournament: nodes hold (score, index); the right side wins only when strictly greater
    level = [(f"s{cls}", f"{iw}'d{cls}") for cls in range(k)]
    t = 0
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            (ls, li), (rs, ri) = level[i], level[i + 1]
            body.append(f"wire r{t} = {rs} > {ls};")
            body.append(f"wire [{w - 1}:0] m{t} = r{t} ? {rs} : {ls};")
            body.append(f"wire [{iw - 1}:0] i{t} = r{t} ? {ri} : {li};")
            nxt.append((f"m{t}", f"i{t}"))
            t += 1
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    body.append(f"assign class_index = {level[0][1]};")
    return ports, body


def dumps(circuit: Circuit, *, module: str = "lgc_net", pipeline_every: int | None = None) -> str:
    """The Verilog text of ``circuit`` (see the module docstring for ports and timing)."""
    c = circuit.validate()
    check_identifier(module)
    if pipeline_every is not None and (int(pipeline_every) != pipeline_every or pipeline_every < 1):
        raise ValueError(f"pipeline_every must be a positive integer or None, got {pipeline_every!r}")
    if c.num_outputs == 0:
        raise ValueError("a Verilog module needs at least one output bit")
    n, g, o = c.num_inputs, c.num_gates, c.num_outputs
    base = [f"x[{i}]" for i in range(n)] + [f"g{n + i}" for i in range(g)]
    gate_name = base[n:]
    # no x port without inputs (Verilog has no zero-width vectors): a module of constants
    ports = ([f"input wire [{n - 1}:0] x"] if n else []) + [f"output wire [{o - 1}:0] y"]
    body: list[str] = []
    regs: list[str] = []
    if pipeline_every is None:
        body += _gate_lines(c, [base[i] for i in c.a.tolist()], [base[i] for i in c.b.tolist()], gate_name)
        body.append(_y_assign(c, base.__getitem__))
    else:
        every = int(pipeline_every)
        lv = levels(c).astype(np.int64)
        stage = np.zeros(n + g, dtype=np.int64)
        stage[n:] = np.maximum(lv - 1, 0) // every
        stages = int(stage.max()) + 1 if g else 1
        ua, ub = used_operands(c)
        need = stage.copy()  # the last stage at which each node is read
        gs = stage[n:]
        np.maximum.at(need, c.a[ua].astype(np.int64), gs[ua])
        np.maximum.at(need, c.b[ub].astype(np.int64), gs[ub])
        need[c.outputs.astype(np.int64)] = stages  # y is read after the last register bank

        def name_at(node: int, s: int) -> str:
            return base[node] if s == stage[node] else f"r{s}_{node}"

        stage_l = stage.tolist()
        gstage = stage_l[n:]
        body += _gate_lines(c, [name_at(v, s) for v, s in zip(c.a.tolist(), gstage)],
                            [name_at(v, s) for v, s in zip(c.b.tolist(), gstage)], gate_name)
        regged = np.flatnonzero(need > stage)
        updates = []
        for node in regged.tolist():
            for s in range(stage_l[node] + 1, int(need[node]) + 1):
                regs.append(f"reg r{s}_{node};")
                updates.append(f"    r{s}_{node} <= {name_at(node, s - 1)};")
        body.append(_y_assign(c, lambda node: name_at(node, stages)))
        ports = ["input wire clk", "input wire rst", "input wire valid_in"] + ports + ["output wire valid_out"]
        regs.append(f"reg [{stages - 1}:0] valid_q;")
        shift = "valid_in" if stages == 1 else f"{{valid_q[{stages - 2}:0], valid_in}}"
        body.append("always @(posedge clk) begin")
        body += updates
        body.append(f"    if (rst) valid_q <= {stages}'d0; else valid_q <= {shift};")
        body.append("end")
        body.append(f"assign valid_out = valid_q[{stages - 1}];")
    if c.head is not None:
        hp, hb = _head_lines(c, "y")
        ports += hp
        body += hb
    latency = "" if pipeline_every is None else (f"// pipelined every {pipeline_every} levels: latency "
                                                  f"{pipeline_latency(c, int(pipeline_every))} cycles\n")
    header = (f"// written by lgc: {n} inputs, {g} gates, {o} outputs"
              + (f", group-sum head k={c.head.k}" if c.head is not None else "") + "\n" + latency
              + "// x takes input bits (no input encoder): bit i = input i; y bit j = output j\n")
    return (header + f"module {module} (\n    " + ",\n    ".join(ports) + "\n);\n"
            + "".join(r + "\n" for r in regs) + "\n".join(body) + "\nendmodule\n")


def write(circuit: Circuit, path: str | os.PathLike, *, module: str = "lgc_net",
          pipeline_every: int | None = None) -> None:
    """Write the module to ``path`` (see :func:`dumps`)."""
    text = dumps(circuit, module=module, pipeline_every=pipeline_every)
    with open(path, "w") as f:
        f.write(text)
