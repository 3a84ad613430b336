"""The group-sum head and input encoder as JSON, for formats that carry only output bits.

BLIF and AIGER have no notion of a readout or of raw-feature thresholds; lgc keeps them in a
comment (``# lgc {...}`` / the AIGER comment section) so a file written by lgc reads back whole.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..circuit import Circuit, GroupSumHead, InputEncoder
from ..limits import check_claim


def readout_info(circuit: Circuit) -> dict[str, Any]:
    """``{"head": ..., "encoder": ...}`` for what the circuit has (empty when it has neither)."""
    info: dict[str, Any] = {}
    if circuit.head is not None:
        info["head"] = circuit.head.to_json()
    if circuit.input_encoder is not None:
        enc = circuit.input_encoder
        info["encoder"] = {"num_features": enc.num_features, "feature": enc.feature.tolist(),
                           "threshold": enc.threshold.tolist()}
    return info


def readout_from_info(info: Mapping[str, Any], file_bytes: int) -> tuple[GroupSumHead | None, InputEncoder | None]:
    """Inverse of :func:`readout_info`; raises CircuitError, KeyError, TypeError or ValueError on bad data.
    The encoder's ``num_features`` is a count the comment does not back, so it obeys :mod:`lgc.ir.limits`
    for a file of ``file_bytes`` bytes."""
    head = GroupSumHead.from_json(info.get("head"))
    encoder = None
    if "encoder" in info:
        e = info["encoder"]
        width = check_claim("encoder num_features", int(e["num_features"]), file_bytes)
        encoder = InputEncoder(np.array(e["feature"], dtype=np.int64), np.array(e["threshold"], dtype=np.float64),
                               width)
    return head, encoder
