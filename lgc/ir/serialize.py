"""The ``.lgc`` file: one Circuit (plus metadata) in a self-checking container.

Layout: 8-byte magic ``b"LGCIRv1\\n"``, a little-endian uint32 header length, a UTF-8 JSON header
(format version, SHA-256 of the payload, scalar fields, metadata), then an ``.npz`` payload of
the arrays (no pickles). Loading checks magic, version, lengths and checksum before parsing, then
validates the circuit, so a damaged file is a clear :class:`CircuitError`, never a wrong circuit.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from typing import Any

import numpy as np

from .circuit import Circuit, CircuitError, GroupSumHead, InputEncoder

MAGIC = b"LGCIRv1\n"
FORMAT_VERSION = 1
_ARRAYS = ("op", "a", "b", "outputs")


def dumps(circuit: Circuit, *, meta: dict[str, Any] | None = None) -> bytes:
    """Serialise to bytes; ``meta`` entries are merged over ``circuit.meta`` (JSON-able values)."""
    circuit.validate()
    arrays = {name: getattr(circuit, name) for name in _ARRAYS}
    if circuit.layers is not None:
        arrays["layers"] = circuit.layers
    if circuit.input_encoder is not None:
        arrays["encoder_feature"] = circuit.input_encoder.feature
        arrays["encoder_threshold"] = circuit.input_encoder.threshold
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    payload = buf.getvalue()
    header = {
        "format": "lgc-circuit",
        "version": FORMAT_VERSION,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload_bytes": len(payload),
        **circuit.header_json(),
        "meta": {**circuit.meta, **(meta or {})},
    }
    head = json.dumps(header, sort_keys=True).encode()
    return MAGIC + struct.pack("<I", len(head)) + head + payload


def save(circuit: Circuit, path: str | os.PathLike, *, meta: dict[str, Any] | None = None) -> None:
    """Write ``circuit`` to ``path`` atomically (a partial write never replaces a good file)."""
    data = dumps(circuit, meta=meta)
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def read_header(data: bytes, source: str = "<bytes>") -> tuple[dict[str, Any], bytes]:
    """Split and check a ``.lgc`` blob: (header, payload). Raises CircuitError on any damage."""
    if not data.startswith(MAGIC):
        if data[:6] == b"LGCIRv":
            raise CircuitError(f"{source}: .lgc container version {data[6:7]!r} is newer than this lgc reads (1)")
        raise CircuitError(f"{source}: not an .lgc file (bad magic {data[:8]!r})")
    if len(data) < len(MAGIC) + 4:
        raise CircuitError(f"{source}: truncated .lgc file (no header length)")
    (hlen,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    if len(data) < start + hlen:
        raise CircuitError(f"{source}: truncated .lgc file (header cut short)")
    try:
        header = json.loads(data[start:start + hlen].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CircuitError(f"{source}: corrupt .lgc header ({e})") from None
    if not isinstance(header, dict) or header.get("format") != "lgc-circuit":
        raise CircuitError(f"{source}: .lgc header does not describe a circuit")
    version = header.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise CircuitError(f"{source}: .lgc format version {version!r} is not supported "
                           f"(this lgc reads versions up to {FORMAT_VERSION}; upgrade lgc)")
    payload = data[start + hlen:]
    if len(payload) != header.get("payload_bytes"):
        raise CircuitError(f"{source}: truncated .lgc file ({len(payload)} of {header.get('payload_bytes')} payload bytes)")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise CircuitError(f"{source}: .lgc checksum mismatch (the file is corrupt)")
    return header, payload


def loads(data: bytes, source: str = "<bytes>") -> Circuit:
    """Parse a ``.lgc`` blob into a validated Circuit."""
    header, payload = read_header(data, source)
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        enc = None
        if header.get("input_encoder") is not None:
            enc = InputEncoder(arrays["encoder_feature"], arrays["encoder_threshold"],
                               int(header["input_encoder"]["num_features"]))
        circuit = Circuit(int(header["num_inputs"]), arrays["op"], arrays["a"], arrays["b"], arrays["outputs"],
                          head=GroupSumHead.from_json(header.get("head")), input_encoder=enc,
                          layers=arrays.get("layers"), meta=header.get("meta") or {})
    except CircuitError as e:
        raise CircuitError(f"{source}: {e}") from None
    except (KeyError, ValueError, TypeError, OSError) as e:
        raise CircuitError(f"{source}: corrupt .lgc payload ({type(e).__name__}: {e})") from None
    try:
        return circuit.validate()
    except CircuitError as e:
        raise CircuitError(f"{source}: {e}") from None


def load(path: str | os.PathLike) -> Circuit:
    """Read a ``.lgc`` file written by :func:`save` (or by ``CompiledNet.save``)."""
    with open(path, "rb") as f:
        data = f.read()
    return loads(data, os.fspath(path))
