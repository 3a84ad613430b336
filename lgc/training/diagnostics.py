"""Where a trained logic network loses accuracy when it is discretised.

:func:`discretisation_gap` measures accuracy three ways on the same images: every layer relaxed
(train mode), the conv trunk hard with the fully connected head relaxed, and every layer hard (eval
mode, which equals the compiled circuit). The first gap is what hard gates cost the trunk's features,
the second what they cost the head. Cost: three forward passes over ``x``.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def split_at_features(model) -> tuple[Any, Any]:
    """(conv trunk through the Flatten after its last ``LogicConv2d``, FC head) of a Sequential conv
    model; ValueError when the model has no conv layer."""
    from ..frontend.conv import LogicConv2d
    import torch
    convs = [i for i, m in enumerate(model) if isinstance(m, LogicConv2d)]
    if not convs:
        raise ValueError("the model has no LogicConv2d: there is no conv trunk to split off")
    cut = next((i for i in range(convs[-1], len(model)) if isinstance(model[i], torch.nn.Flatten)), None)
    if cut is None:
        raise ValueError("no Flatten follows the last LogicConv2d")
    return model[:cut + 1], model[cut + 1:]


def _accuracy(model, x: np.ndarray, y: np.ndarray, batch: int) -> float:
    import torch
    x_t = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    device = next(model.parameters()).device
    with torch.no_grad():
        pred = torch.cat([model(x_t[i:i + batch].to(device)).argmax(1).cpu() for i in range(0, len(x_t), batch)])
    return float(np.mean(pred.numpy() == np.asarray(y)))


def discretisation_gap(model, x: np.ndarray, y: np.ndarray, *, batch: int = 2000) -> dict[str, float]:
    """Accuracy (fraction) of ``model`` on raw features ``x`` [N, F] with labels ``y`` int [N]:
    ``all_soft`` (train mode), ``hard_conv_soft_fc`` (conv models only: trunk in eval mode, head in
    train mode) and ``eval_mode`` (the circuit's). The model's mode is restored."""
    was = model.training
    out: dict[str, float] = {}
    try:
        model.train()
        out["all_soft"] = _accuracy(model, x, y, batch)
        try:
            trunk, _ = split_at_features(model)
        except ValueError:
            trunk = None
        if trunk is not None:
            trunk.eval()
            out["hard_conv_soft_fc"] = _accuracy(model, x, y, batch)
        model.eval()
        out["eval_mode"] = _accuracy(model, x, y, batch)
    finally:
        model.train(was)
    return out
