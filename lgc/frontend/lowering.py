"""Lowering a trained model to the gate IR: ``lower(model, input_shape=None) -> Circuit``.

One loop over :func:`lgc.frontend.walk.trace`'s steps: each module's registered handler appends
its gates to a :class:`~lgc.frontend.builder.CircuitBuilder` (a leading ``Binarize`` becomes the
circuit's ``input_encoder``, a final ``GroupSum`` its ``head``). The model's parameters are read
only (O(gates) numpy work, no forward pass) in eval semantics: each gate is its argmax gate,
lowest index on ties, whatever mode the model is in; the model is not changed.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from lgc.ir import Circuit

from . import binarize, conv, layers  # noqa: F401  (register their module kinds)
from .builder import CircuitBuilder
from .walk import trace


def lower(model: Any, input_shape: Any = None) -> Circuit:
    """The circuit that computes what ``model`` computes in eval mode, on 0/1 inputs.

    ``model``: an ``nn.Sequential`` (nested ones are flattened) of an optional ``Binarize`` first,
    then ``Flatten``/``Unflatten``/``Identity``, ``LogicConv2d``/``OrPool2d`` (Petersen et al.,
    NeurIPS 2024), ``LogicLayer`` (Petersen et al., NeurIPS 2022) and an optional final
    ``GroupSum``; or a single such module.
    ``input_shape``: one sample's shape as the model takes it, without the batch axis (e.g.
    ``(1, 12, 12)`` for a model starting with ``LogicConv2d(1, ...)``), or an example batch
    (a tensor or array ``[N, ...]``, as ``torch.export`` takes); inferred from the first module
    that fixes it (a ``LogicLayer``'s ``in_dim``, an ``Unflatten``, a ``LogicConv2d``'s
    ``input_size``, a ``Binarize``'s ``num_features``) when None.

    Returns a validated :class:`lgc.ir.Circuit` with ``num_inputs`` = the input bits (after the
    Binarize), gates in module order (``layers`` holds the boundaries of the modules that add
    gates), outputs = the last activation flattened (C order), ``head`` from the GroupSum, and
    ``meta`` ``{"frontend", "input_shape", "layer_sizes", "num_inputs"[, "num_thresholds"]}``.
    Raises ``ValueError`` naming the first module that cannot be lowered or does not fit its
    input, ``TypeError`` when ``model`` is not a torch module.
    """
    walked = trace(model, input_shape, who="lower")
    bits_shape = walked.bits_shape
    num_inputs = math.prod(bits_shape)
    builder = CircuitBuilder(num_inputs)
    encoder = walked.encoder
    if encoder is not None:
        builder.input_encoder = encoder.kind.encoder(encoder.module, encoder.in_shape)
    nodes = np.arange(num_inputs, dtype=np.int64).reshape(bits_shape)
    sizes: list[int] = []
    for step in walked.body:
        nodes = step.kind.lower(step.module, builder, nodes)
        if builder.end_layer():
            sizes.append(int(nodes.size))
    op, a, b = builder.arrays()
    meta: dict[str, Any] = {"frontend": "lgc.frontend", "input_shape": list(walked.input_shape),
                            "layer_sizes": sizes, "num_inputs": num_inputs}
    if encoder is not None:
        meta["num_thresholds"] = encoder.module.num_thresholds
    return Circuit(num_inputs, op, a, b, nodes.reshape(-1), head=builder.head, input_encoder=builder.input_encoder,
                   layers=np.asarray(builder.bounds, dtype=np.int64), meta=meta).validate()
