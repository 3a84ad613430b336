"""The gate-level IR: a flat, topologically ordered netlist stored as numpy arrays.

Node ids ``0 .. num_inputs-1`` are primary inputs; gate ``i`` is node ``num_inputs + i`` and reads
operands ``a[i]`` and ``b[i]`` (both ``< num_inputs + i``) through op code ``op[i]`` (its truth
table, see :mod:`lgc.ir.ops`). A constant gate (op 0 or 15) ignores its operands, and 0 is always
a legal operand for it: a circuit with no inputs (``num_inputs == 0``) starts with a constant gate
``op 0/15, a = b = 0`` that names itself. Output ``j`` is node ``outputs[j]``, complemented where
``output_negated[j]`` is true (a free output inverter, as an AIGER output literal: no gate is counted
for it; a group-sum head counts such an output as ``1 - node``).
A Circuit is immutable: passes build new ones with ``replace``.
Construction coerces and checks dtypes and shapes (O(1) Python work); ``validate`` checks the
graph invariants in O(gates) numpy work and is cached.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Mapping, Sequence

import numpy as np

from . import ops as _ops


class CircuitError(ValueError):
    """A circuit, or a file meant to hold one, breaks the IR's invariants."""


@dataclasses.dataclass(frozen=True)
class GroupSumHead:
    """Group-sum readout: ``k`` classes over contiguous equal groups of the outputs.

    Class score = popcount of its group (int32); PyTorch's GroupSum gives score / tau.
    """

    k: int
    tau: float = 1.0

    def __post_init__(self) -> None:
        if int(self.k) != self.k or self.k < 1:
            raise CircuitError(f"group-sum head needs k >= 1 classes, got {self.k!r}")
        if not np.isfinite(self.tau) or self.tau <= 0:
            raise CircuitError(f"group-sum head needs a finite tau > 0, got {self.tau!r}")
        object.__setattr__(self, "k", int(self.k))
        object.__setattr__(self, "tau", float(self.tau))

    def to_json(self) -> dict[str, Any]:
        return {"kind": "group_sum", "k": self.k, "tau": self.tau}

    @staticmethod
    def from_json(d: Mapping[str, Any] | None) -> "GroupSumHead | None":
        if d is None:
            return None
        if d.get("kind") != "group_sum":
            raise CircuitError(f"unknown head kind {d.get('kind')!r}")
        return GroupSumHead(int(d["k"]), float(d["tau"]))


class InputEncoder:
    """Turns raw features into input bits: ``bit i = x[:, feature[i]] > threshold[i]``.

    ``num_features`` is the width of a flattened raw sample. Several bits may read one feature
    (several thresholds), so a compiled net can take raw images or tabular rows directly.
    """

    __slots__ = ("feature", "threshold", "num_features", "_planes", "_threshold32")

    def __init__(self, feature: Sequence[int] | np.ndarray, threshold: Sequence[float] | np.ndarray,
                 num_features: int):
        feature = np.asarray(feature)
        threshold = np.asarray(threshold)
        if feature.ndim != 1 or feature.dtype.kind not in "iu":
            raise CircuitError(f"input encoder feature must be a 1-D integer array, got {feature.dtype}{list(feature.shape)}")
        if threshold.shape != feature.shape or threshold.dtype.kind not in "fiu":
            raise CircuitError(f"input encoder threshold must be a numeric array of shape {list(feature.shape)}, "
                               f"got {threshold.dtype}{list(threshold.shape)}")
        if num_features < 1 or (feature.size and (feature.min() < 0 or feature.max() >= num_features)):
            raise CircuitError(f"input encoder features must lie in 0..{num_features - 1}")
        if not np.isfinite(threshold).all():
            raise CircuitError("input encoder thresholds must be finite")
        self.feature = _frozen(feature.astype(np.int32))
        self.threshold = _frozen(threshold.astype(np.float64))
        self.num_features = int(num_features)
        # Binarize's layout (plane t holds every feature against threshold t) encodes by broadcasting,
        # about 10x faster than gathering columns
        f = self.num_features
        planes = self.feature.size // f if self.feature.size % f == 0 else 0
        self._planes = planes if planes and np.array_equal(self.feature, np.tile(np.arange(f), planes)) else 0
        # float32 x > t  <=>  x > (largest float32 <= t): the comparison stays in float32, exactly
        t32 = self.threshold.astype(np.float32)
        self._threshold32 = np.where(t32.astype(np.float64) > self.threshold, np.nextafter(t32, np.float32(-np.inf)), t32)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Raw features ``[N, num_features]`` (any numeric dtype) -> bool bits ``[N, num_inputs]``, C-contiguous."""
        x = np.asarray(x)
        threshold = self._threshold32 if x.dtype == np.float32 else self.threshold
        if self._planes:
            return (x[:, None, :] > threshold.reshape(self._planes, self.num_features)).reshape(x.shape[0], self.feature.size)
        return np.take(x, self.feature, axis=1) > threshold

    def to_json(self) -> dict[str, Any]:
        return {"num_features": self.num_features}

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, InputEncoder) and self.num_features == other.num_features
                and np.array_equal(self.feature, other.feature) and np.array_equal(self.threshold, other.threshold))

    def __repr__(self) -> str:
        return f"InputEncoder({self.feature.size} bits from {self.num_features} features)"


def _frozen(arr: np.ndarray) -> np.ndarray:
    """A read-only contiguous array; writeable input is copied so callers cannot mutate a circuit."""
    arr = np.ascontiguousarray(arr)
    if arr.flags.writeable:
        arr = arr.copy()
        arr.flags.writeable = False
    return arr


def _int_array(name: str, values: Any, dtype: type, ndim: int = 1) -> np.ndarray:
    arr = np.asarray(values)
    if arr.size == 0:
        arr = arr.reshape((0,) * ndim) if arr.ndim != ndim else arr
    if arr.ndim != ndim:
        raise CircuitError(f"{name} must be a {ndim}-D array, got shape {list(arr.shape)}")
    if arr.size and arr.dtype.kind not in "iub":
        raise CircuitError(f"{name} must hold integers, got dtype {arr.dtype}")
    info = np.iinfo(dtype)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        raise CircuitError(f"{name} holds values outside the range of {np.dtype(dtype).name}")
    return _frozen(arr.astype(dtype, copy=False))


class Circuit:
    """A gate-level netlist. See the module docstring for the node-id convention."""

    __slots__ = ("num_inputs", "op", "a", "b", "outputs", "output_negated", "head", "input_encoder", "layers",
                 "meta", "_valid", "_hash", "__weakref__")

    def __init__(self, num_inputs: int, op: Any = (), a: Any = (), b: Any = (), outputs: Any = (), *,
                 output_negated: Any = None, head: GroupSumHead | None = None,
                 input_encoder: InputEncoder | None = None, layers: Any = None,
                 meta: Mapping[str, Any] | None = None):
        if int(num_inputs) != num_inputs or num_inputs < 0:
            raise CircuitError(f"num_inputs must be a non-negative integer, got {num_inputs!r}")
        self.num_inputs = int(num_inputs)
        self.op = _int_array("op", op, np.uint8)
        self.a = _int_array("a", a, np.int32)
        self.b = _int_array("b", b, np.int32)
        self.outputs = _int_array("outputs", outputs, np.int32)
        if output_negated is None:
            self.output_negated = _frozen(np.zeros(self.outputs.size, dtype=np.bool_))
        else:
            neg = np.asarray(output_negated)
            if neg.ndim != 1 or (neg.size and (neg.dtype.kind not in "biu" or (
                    neg.dtype.kind != "b" and not np.isin(neg, (0, 1)).all()))):
                raise CircuitError(f"output_negated must be a 1-D array of booleans (or 0/1), got "
                                   f"{neg.dtype}{list(neg.shape)}")
            if neg.size != self.outputs.size:
                raise CircuitError(f"output_negated has {neg.size} entries, the circuit has {self.outputs.size} outputs")
            self.output_negated = _frozen(neg.astype(np.bool_))
        if not (self.op.shape == self.a.shape == self.b.shape):
            raise CircuitError(f"op, a and b must have one length, got {self.op.size}, {self.a.size}, {self.b.size}")
        if head is not None and not isinstance(head, GroupSumHead):
            raise CircuitError(f"head must be a GroupSumHead or None, got {type(head).__name__}")
        if input_encoder is not None and not isinstance(input_encoder, InputEncoder):
            raise CircuitError(f"input_encoder must be an InputEncoder or None, got {type(input_encoder).__name__}")
        self.head = head
        self.input_encoder = input_encoder
        self.layers = None if layers is None else _int_array("layers", layers, np.int64)
        self.meta = dict(meta or {})
        self._valid = False
        self._hash: str | None = None

    # -- sizes -------------------------------------------------------------------------------
    @property
    def num_gates(self) -> int:
        return int(self.op.size)

    @property
    def num_nodes(self) -> int:
        return self.num_inputs + self.num_gates

    @property
    def num_outputs(self) -> int:
        return int(self.outputs.size)

    def __len__(self) -> int:
        return self.num_gates

    @property
    def num_negated_outputs(self) -> int:
        """How many outputs are complemented literals (free output inverters)."""
        return int(np.count_nonzero(self.output_negated))

    # -- construction helpers ----------------------------------------------------------------
    def replace(self, **changes: Any) -> "Circuit":
        """A new Circuit with some fields changed (the original is untouched).

        New ``outputs`` keep ``output_negated`` position by position (a pass that redirects an
        output to an equal node keeps its polarity). Raises CircuitError where the number of outputs
        changes under negated outputs without a new ``output_negated``."""
        fields = dict(num_inputs=self.num_inputs, op=self.op, a=self.a, b=self.b, outputs=self.outputs,
                      output_negated=self.output_negated, head=self.head, input_encoder=self.input_encoder,
                      layers=self.layers, meta=self.meta)
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"Circuit has no field(s) {sorted(unknown)}")
        if "outputs" in changes and "output_negated" not in changes:
            if not self.output_negated.any():
                fields["output_negated"] = None
            elif np.asarray(changes["outputs"]).size != self.num_outputs:
                raise CircuitError("replace(outputs=...) changes the number of outputs of a circuit with negated "
                                   "outputs: give output_negated too")
        fields.update(changes)
        return Circuit(fields.pop("num_inputs"), **fields)

    def with_output_inverters(self) -> "Circuit":
        """The same function with no negated outputs: each node some output reads negated gets one
        NOT gate (appended after the last gate, as a last layer) and those outputs read it.

        For consumers without output literals (BLIF, kernels that return output bits); returns
        ``self`` when no output is negated. Cost: O(outputs) numpy work."""
        if not self.output_negated.any():
            return self
        g = self.num_gates
        nodes, inverse = np.unique(self.outputs[self.output_negated], return_inverse=True)
        outputs = self.outputs.copy()
        outputs[self.output_negated] = self.num_nodes + inverse
        layers = None if self.layers is None else np.concatenate([self.layers, [g + nodes.size]])
        return self.replace(op=np.concatenate([self.op, np.full(nodes.size, _ops.NOT_A, np.uint8)]),
                            a=np.concatenate([self.a, nodes.astype(np.int32)]),
                            b=np.concatenate([self.b, nodes.astype(np.int32)]),
                            outputs=outputs, output_negated=None, layers=layers)

    # -- invariants ---------------------------------------------------------------------------
    def validate(self) -> "Circuit":
        """Check every invariant; raise :class:`CircuitError` naming the first bad gate. Returns self."""
        if self._valid:
            return self
        n, g = self.num_inputs, self.num_gates
        bad_op = np.flatnonzero(self.op >= _ops.NUM_OPS)
        if bad_op.size:
            i = int(bad_op[0])
            raise CircuitError(f"gate {i} (node {n + i}): op code {int(self.op[i])} outside 0..15")
        node = n + np.arange(g, dtype=np.int64)
        # a constant gate ignores its operands; node 0 is always a legal one, so a circuit without
        # inputs can start with a constant (its first gate has no earlier node to name)
        constant = (self.op == 0) | (self.op == 15)
        for name, operand in (("a", self.a), ("b", self.b)):
            bad = np.flatnonzero((operand < 0) | ((operand >= node) & ~(constant & (operand == 0))))
            if bad.size:
                i = int(bad[0])
                v = int(operand[i])
                why = "is negative" if v < 0 else ("is not before the gate" if v < self.num_nodes else "is out of range")
                raise CircuitError(f"gate {i} (node {n + i}): operand {name} = {v} {why} "
                                   f"(operands must be node ids < {n + i})")
        bad_out = np.flatnonzero((self.outputs < 0) | (self.outputs >= self.num_nodes))
        if bad_out.size:
            j = int(bad_out[0])
            raise CircuitError(f"output {j} = node {int(self.outputs[j])} is out of range 0..{self.num_nodes - 1}")
        if self.head is not None and self.num_outputs % self.head.k:
            raise CircuitError(f"{self.num_outputs} outputs cannot be split into {self.head.k} equal groups")
        if self.head is not None and self.num_outputs == 0:
            raise CircuitError("a group-sum head needs at least one output per class")
        if self.input_encoder is not None and self.input_encoder.feature.size != n:
            raise CircuitError(f"input encoder has {self.input_encoder.feature.size} bits, circuit has {n} inputs")
        if self.layers is not None:
            lay = self.layers
            if lay.size < 1 or lay[0] != 0 or lay[-1] != g or (np.diff(lay) < 0).any():
                raise CircuitError(f"layers must be ascending gate boundaries from 0 to {g}, got {lay.tolist()[:8]}")
        self._valid = True
        return self

    # -- identity -----------------------------------------------------------------------------
    def content_hash(self) -> str:
        """SHA-256 of everything that defines the function (not ``meta`` or ``layers``): a cache key."""
        if self._hash is None:
            h = hashlib.sha256()
            h.update(json.dumps(self.header_json(), sort_keys=True).encode())
            for arr in (self.op, self.a, self.b, self.outputs):
                h.update(arr.tobytes())
            if self.output_negated.any():   # circuits without negated outputs keep their old hashes
                h.update(b"output_negated")
                h.update(np.packbits(self.output_negated).tobytes())
            if self.input_encoder is not None:
                h.update(self.input_encoder.feature.tobytes())
                h.update(self.input_encoder.threshold.tobytes())
            self._hash = h.hexdigest()
        return self._hash

    def header_json(self) -> dict[str, Any]:
        """The scalar part of the circuit as JSON-able data."""
        return {
            "num_inputs": self.num_inputs,
            "num_gates": self.num_gates,
            "num_outputs": self.num_outputs,
            "head": None if self.head is None else self.head.to_json(),
            "input_encoder": None if self.input_encoder is None else self.input_encoder.to_json(),
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Circuit):
            return NotImplemented
        return (self.num_inputs == other.num_inputs and self.head == other.head
                and self.input_encoder == other.input_encoder
                and all(np.array_equal(x, y) for x, y in ((self.op, other.op), (self.a, other.a),
                                                             (self.b, other.b), (self.outputs, other.outputs),
                                                             (self.output_negated, other.output_negated))))

    __hash__ = None  # type: ignore[assignment]  # mutable-looking arrays; use content_hash()

    # -- convenience delegates (implementations live in their own modules) ------------------
    def save(self, path: Any) -> None:
        """Write a ``.lgc`` file (see :mod:`lgc.ir.serialize`)."""
        from .serialize import save
        save(self, path)

    def to_text(self) -> str:
        from .formats.text import dumps
        return dumps(self)

    def stats(self) -> "Any":
        from .inspect import stats
        return stats(self)

    def to_networkx(self) -> "Any":
        from .inspect import to_networkx
        return to_networkx(self)

    def __repr__(self) -> str:
        head = "" if self.head is None else f", head=group_sum(k={self.head.k}, tau={self.head.tau:g})"
        enc = "" if self.input_encoder is None else f", {self.input_encoder!r}"
        neg = f" ({self.num_negated_outputs} negated)" if self.output_negated.any() else ""
        return f"Circuit(inputs={self.num_inputs}, gates={self.num_gates}, outputs={self.num_outputs}{neg}{head}{enc})"

    def _repr_html_(self) -> str:
        from .inspect import stats
        return stats(self)._repr_html_()
