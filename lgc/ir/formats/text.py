"""lgc's human-readable text form: one gate a line, round-tripping exactly.

```
lgc-text 1
inputs 4
head group_sum 2 1.0          # optional: k tau
encoder 784                   # optional: num_features, then one `enc` line per input
enc 0 12 0.5                  # input feature threshold (repr floats round-trip)
layers 0 3 6                  # optional gate boundaries
gate 4 XOR 0 1                # node-id op-name a b, in node order
outputs 8 9 4 6               # node ids; ~9 is node 9 negated (a free output inverter)
meta {"name": "example"}      # optional, one JSON line
```
``#`` starts a comment. Parsing is O(lines); errors name the line. The counts ``inputs`` and
``encoder`` are claims the file does not back with lines, so they obey :mod:`lgc.ir.limits`.
"""
from __future__ import annotations

import json
import os
from typing import Iterable

import numpy as np

from ..._atomic import staged_path
from .. import ops as _ops
from ..circuit import Circuit, CircuitError, GroupSumHead, InputEncoder
from ..limits import check_claim
from .errors import FormatError, read_text

MAGIC = "lgc-text"
VERSION = 1


def dumps(circuit: Circuit) -> str:
    circuit.validate()
    return "".join(_lines(circuit))


def _lines(c: Circuit) -> Iterable[str]:
    yield f"{MAGIC} {VERSION}\n"
    yield f"inputs {c.num_inputs}\n"
    if c.head is not None:
        yield f"head group_sum {c.head.k} {c.head.tau!r}\n"
    if c.input_encoder is not None:
        enc = c.input_encoder
        yield f"encoder {enc.num_features}\n"
        for i, (f, t) in enumerate(zip(enc.feature.tolist(), enc.threshold.tolist())):
            yield f"enc {i} {f} {t!r}\n"
    if c.layers is not None:
        yield "layers " + " ".join(map(str, c.layers.tolist())) + "\n"
    names = _ops.OP_NAMES
    n = c.num_inputs
    for i, (o, a, b) in enumerate(zip(c.op.tolist(), c.a.tolist(), c.b.tolist())):
        yield f"gate {n + i} {names[o]} {a} {b}\n"
    yield "outputs " + " ".join(("~" if neg else "") + str(s)
                                for s, neg in zip(c.outputs.tolist(), c.output_negated.tolist())) + "\n"
    if c.meta:
        yield "meta " + json.dumps(c.meta, sort_keys=True) + "\n"


def loads(text: str, source: str = "<text>") -> Circuit:
    """Parse the text form; raises :class:`FormatError` naming the line of the first problem."""
    num_inputs = None
    head = None
    enc_width = None
    enc_feature: list[int] = []
    enc_threshold: list[float] = []
    layers = None
    ops: list[int] = []
    a: list[int] = []
    b: list[int] = []
    outputs = None
    negated: list[bool] = []
    meta: dict = {}
    seen_magic = False
    size = len(text)

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("meta ") else raw.strip()
        if not line:
            continue

        def fail(msg: str) -> FormatError:
            return FormatError(f"{msg}: {raw.strip()!r}", source=source, line=lineno)

        key, _, rest = line.partition(" ")
        fields = rest.split()
        try:
            if not seen_magic:
                if key != MAGIC:
                    raise fail(f"expected '{MAGIC} {VERSION}' first")
                if fields != [str(VERSION)]:
                    raise fail(f"unsupported text format version (this lgc reads {VERSION})")
                seen_magic = True
            elif key == "inputs":
                num_inputs = int(fields[0])
                if num_inputs < 0 or len(fields) != 1:
                    raise fail("inputs takes one non-negative count")
                check_claim("inputs", num_inputs, size, fail)
            elif key == "head":
                if len(fields) != 3 or fields[0] != "group_sum":
                    raise fail("expected 'head group_sum K TAU'")
                head = GroupSumHead(int(fields[1]), float(fields[2]))
            elif key == "encoder":
                enc_width = int(fields[0])
                if len(fields) != 1:
                    raise fail("encoder takes one feature count")
                check_claim("encoder", enc_width, size, fail)
            elif key == "enc":
                if len(fields) != 3 or int(fields[0]) != len(enc_feature):
                    raise fail(f"expected 'enc {len(enc_feature)} FEATURE THRESHOLD'")
                enc_feature.append(int(fields[1]))
                enc_threshold.append(float(fields[2]))
            elif key == "layers":
                layers = [int(v) for v in fields]
            elif key == "gate":
                if num_inputs is None:
                    raise fail("'inputs' must come before the gates")
                if len(fields) != 4:
                    raise fail("expected 'gate NODE OP A B'")
                node = int(fields[0])
                if node != num_inputs + len(ops):
                    raise fail(f"gates must be listed in node order; expected node {num_inputs + len(ops)}")
                try:
                    code = _ops.op_code(fields[1]) if not fields[1].isdigit() else _ops.op_code(int(fields[1]))
                except ValueError as e:
                    raise fail(str(e)) from None
                ops.append(code)
                a.append(int(fields[2]))
                b.append(int(fields[3]))
            elif key == "outputs":
                negated = [v.startswith("~") for v in fields]
                outputs = [int(v[1:] if v.startswith("~") else v) for v in fields]
            elif key == "meta":
                meta = json.loads(rest)
                if not isinstance(meta, dict):
                    raise fail("meta must be a JSON object")
            else:
                raise fail(f"unknown statement {key!r}")
        except FormatError:
            raise
        except (ValueError, IndexError, CircuitError, RecursionError) as e:
            raise fail(f"malformed line ({e})") from None

    if not seen_magic:
        raise FormatError(f"empty file; expected '{MAGIC} {VERSION}'", source=source)
    if num_inputs is None or outputs is None:
        raise FormatError("missing 'inputs' or 'outputs' statement", source=source)
    try:
        enc = None
        if enc_width is not None:
            enc = InputEncoder(np.array(enc_feature, dtype=np.int64), np.array(enc_threshold), enc_width)
        circuit = Circuit(num_inputs, np.array(ops, dtype=np.int64), np.array(a, dtype=np.int64),
                          np.array(b, dtype=np.int64), np.array(outputs, dtype=np.int64),
                          output_negated=np.array(negated, dtype=bool), head=head,
                          input_encoder=enc, layers=layers, meta=meta)
        return circuit.validate()
    except FormatError:
        raise
    except (CircuitError, OverflowError) as e:
        raise FormatError(str(e), source=source) from None


def save(circuit: Circuit, path: str | os.PathLike) -> None:
    """Write ``circuit`` as lgc's text format, atomically."""
    with staged_path(path) as staged, open(staged, "w") as f:
        f.writelines(_lines(circuit.validate()))


def load(path: str | os.PathLike) -> Circuit:
    return loads(read_text(path), os.fspath(path))
