"""The ``.lgc`` file: one Circuit (plus metadata) in a self-checking container.

Layout (format version 2): 8-byte magic ``b"LGCIRv1\\n"``, a little-endian uint32 header length,
a UTF-8 JSON header (format version, payload length, scalar fields, metadata), an uncompressed
``.npz`` payload of the arrays (``output_negated`` only where some output is negated: a
reader that predates it refuses such a file as having an unexpected member), then a 32-byte SHA-256 of every byte before it. So a flipped bit
anywhere (header included) is a checksum error, never a different circuit.

Loading is bounded by the file: the digest is checked before anything in the header is trusted;
the payload's zip members must be stored (not deflated), named as lgc names them, and each
``.npy`` header's shape and dtype must match the bytes the member really holds, so nothing is
allocated beyond the file (no ``np.load``, no pickles). Counts the header states without holding
them (``num_inputs``, the encoder's ``num_features``) obey :mod:`lgc.ir.limits`. The circuit is
then validated.

Version 1 files (written before the checksum covered the header: SHA-256 of the payload only)
still load, with a warning: their payload checksum is verified and every header count is
cross-checked against the arrays, but a damaged header scalar (``num_inputs``, the head's ``k``
and ``tau``, ``meta``) cannot be detected; re-save such a file to protect it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import warnings
import zipfile
from typing import Any

import numpy as np

from .._atomic import write_atomic
from .circuit import Circuit, CircuitError, GroupSumHead, InputEncoder
from .limits import check_claim

MAGIC = b"LGCIRv1\n"
FORMAT_VERSION = 2
DIGEST_BYTES = 32
_ARRAYS = ("op", "a", "b", "outputs")
#: every array a payload may hold -> the dtype kinds it may have
_KINDS = {"op": "iub", "a": "iu", "b": "iu", "outputs": "iu", "output_negated": "bu", "layers": "iu",
          "encoder_feature": "iu", "encoder_threshold": "fiu"}


def dumps(circuit: Circuit, *, meta: dict[str, Any] | None = None) -> bytes:
    """Serialise to bytes; ``meta`` entries are merged over ``circuit.meta`` (JSON-able values)."""
    circuit.validate()
    arrays = {name: getattr(circuit, name) for name in _ARRAYS}
    if circuit.output_negated.any():  # absent when no output is negated (files older lgc reads too)
        arrays["output_negated"] = circuit.output_negated
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
        "payload_bytes": len(payload),
        **circuit.header_json(),
        "meta": {**circuit.meta, **(meta or {})},
    }
    head = json.dumps(header, sort_keys=True).encode()
    body = MAGIC + struct.pack("<I", len(head)) + head + payload
    return body + hashlib.sha256(body).digest()


def save(circuit: Circuit, path: str | os.PathLike, *, meta: dict[str, Any] | None = None) -> None:
    """Write ``circuit`` to ``path`` atomically (a partial write never replaces a good file)."""
    write_atomic(path, dumps(circuit, meta=meta))


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
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CircuitError(f"{source}: corrupt .lgc header ({e})") from None
    if not isinstance(header, dict) or header.get("format") != "lgc-circuit":
        raise CircuitError(f"{source}: .lgc header does not describe a circuit")
    version = header.get("version")
    if type(version) is not int or version > FORMAT_VERSION or version < 1:
        raise CircuitError(f"{source}: .lgc format version {version!r} is not supported "
                           f"(this lgc reads versions up to {FORMAT_VERSION}; upgrade lgc)")
    size = header.get("payload_bytes")
    trailer = DIGEST_BYTES if version >= 2 else 0
    if type(size) is not int or size < 0:
        raise CircuitError(f"{source}: corrupt .lgc header (payload_bytes = {size!r})")
    if len(data) != start + hlen + size + trailer:
        got = len(data) - start - hlen - trailer
        what = "truncated .lgc file" if got < size else "trailing bytes after the .lgc payload"
        raise CircuitError(f"{source}: {what} ({max(got, 0)} of {size} payload bytes)")
    payload = data[start + hlen:start + hlen + size]
    if version >= 2:
        if hashlib.sha256(data[:-DIGEST_BYTES]).digest() != data[-DIGEST_BYTES:]:
            raise CircuitError(f"{source}: .lgc checksum mismatch (the file is corrupt)")
    else:
        if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
            raise CircuitError(f"{source}: .lgc checksum mismatch (the file is corrupt)")
        warnings.warn(f"{source}: a version-1 .lgc file: its header is not covered by the checksum (only its "
                      f"arrays are); re-save it to protect it", stacklevel=3)
    return header, payload


def _read_arrays(payload: bytes, source: str) -> dict[str, np.ndarray]:
    """The payload's arrays, allocating no more than the payload holds (see the module docstring)."""
    def bad(msg: str) -> CircuitError:
        return CircuitError(f"{source}: corrupt .lgc payload ({msg})")

    try:
        zf = zipfile.ZipFile(io.BytesIO(payload))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as e:
        raise bad(f"not a zip archive: {e}") from None
    arrays: dict[str, np.ndarray] = {}
    for info in infos:
        name = info.filename[:-4] if info.filename.endswith(".npy") else None
        if name not in _KINDS or name in arrays:
            raise bad(f"unexpected member {info.filename!r}")
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > len(payload):
            raise bad(f"member {info.filename!r} is compressed or larger than the file "
                      f"({info.file_size} bytes declared); lgc writes arrays uncompressed")
        try:
            raw = zf.read(info)  # checks the member's CRC-32
            f = io.BytesIO(raw)
            major, _ = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, SyntaxError, TypeError) as e:
            raise bad(f"member {info.filename!r}: {e}") from None
        body = raw[f.tell():]
        if dtype.hasobject or dtype.kind not in _KINDS[name] or dtype.itemsize > 8:
            raise bad(f"{name} has dtype {dtype}")
        count = int(np.prod(shape, dtype=object))
        if any(d < 0 for d in shape) or count * dtype.itemsize != len(body):
            raise bad(f"{name} claims shape {list(shape)} ({count * dtype.itemsize} bytes) but holds {len(body)} bytes")
        arr = np.frombuffer(body, dtype=dtype).reshape(shape, order="F" if fortran else "C")
        arrays[name] = arr
    return arrays


def loads(data: bytes, source: str = "<bytes>") -> Circuit:
    """Parse a ``.lgc`` blob into a validated Circuit (errors: :class:`CircuitError`)."""
    header, payload = read_header(data, source)
    arrays = _read_arrays(payload, source)
    try:
        num_inputs = header["num_inputs"]
        if type(num_inputs) is not int:
            raise TypeError(f"num_inputs = {num_inputs!r} is not an integer")
        check_claim("num_inputs", num_inputs, len(data))
        for field, arr in (("num_gates", arrays["op"]), ("num_outputs", arrays["outputs"])):
            if header.get(field) != arr.size:
                raise ValueError(f"header says {field} = {header.get(field)!r} but the arrays hold {arr.size}")
        enc = None
        enc_json = header.get("input_encoder")
        if enc_json is not None:
            width = enc_json["num_features"]
            if type(width) is not int:
                raise TypeError(f"input_encoder num_features = {width!r} is not an integer")
            check_claim("input_encoder.num_features", width, len(data))
            enc = InputEncoder(arrays["encoder_feature"], arrays["encoder_threshold"], width)
        elif "encoder_feature" in arrays or "encoder_threshold" in arrays:
            raise ValueError("encoder arrays without an input_encoder in the header")
        meta = header.get("meta") or {}
        if not isinstance(meta, dict):
            raise TypeError("meta is not a JSON object")
        circuit = Circuit(num_inputs, arrays["op"], arrays["a"], arrays["b"], arrays["outputs"],
                          output_negated=arrays.get("output_negated"), head=GroupSumHead.from_json(header.get("head")), input_encoder=enc,
                          layers=arrays.get("layers"), meta=meta)
        return circuit.validate()
    except CircuitError as e:
        raise CircuitError(f"{source}: {e}") from None
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as e:
        raise CircuitError(f"{source}: corrupt .lgc file ({type(e).__name__}: {e})") from None


def load(path: str | os.PathLike) -> Circuit:
    """Read a ``.lgc`` file written by :func:`save` (or by ``CompiledNet.save``)."""
    with open(path, "rb") as f:
        data = f.read()
    return loads(data, os.fspath(path))
