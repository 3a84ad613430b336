"""Discretisation-aware refinement of a trained conv logic network's tree gates (post-training).

Eval mode takes each gate's most likely choice (the argmax of 16 logits, or the rows ``w > 0`` of 4
input-wise logits) one gate at a time; the choices interact, and the conv layers' hard features lose
0.2-0.5 points of test accuracy against the relaxed network (``conv_gap.py``). The conv
layers hold few distinct gates (84 + 336 in variant i: a tree is shared by every position), so a
greedy coordinate search over them is cheap: for each tree gate, try its next most likely choices
(the runner-up ops, or the least certain rows flipped) and keep a change when the CIRCUIT's
cross-entropy on a fixed subset of training images falls — rounding chosen by the loss, as AdaRound
does for quantised weights. Test data is read only to report the accuracy before and after.

    python experiments/conv_mnist/conv_refine.py /work/runs/conv4/model_i-unique-e80.pt --crop 4 [--images 10000 --candidates 2]

Writes the refined checkpoint next to the input (``<name>_refined.pt``) and
experiments/conv_mnist/out/conv_refine_<name>.json.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np
import torch

import lgc
from lgc.frontend import load_checkpoint, save_checkpoint
from lgc.frontend.conv import LogicConv2d

from common import OUT, load_mnist, predict


def alternatives(w: torch.Tensor, count: int) -> list[torch.Tensor]:
    """Logit vectors whose eval gate is one of the ``count`` next most likely choices of ``w``.

    16 gate logits: the runner-up ops, each lifted just above the current maximum. 4 input-wise
    logits: the ``count`` least certain rows (smallest |w|), each flipped to the other side of 0."""
    out = []
    if w.shape[-1] == 16:
        top = w.max()
        for op in torch.argsort(w, descending=True)[1:1 + count]:
            v = w.clone()
            v[op] = top + 1e-3 * (1 + top.abs())
            out.append(v)
    else:
        for r in torch.argsort(w.abs())[:count]:
            v = w.clone()
            v[r] = -w[r] if w[r] != 0 else 1e-3
            out.append(v)
    return out


def refine(model: torch.nn.Sequential, x: torch.Tensor, y: torch.Tensor, candidates: int,
           log=print) -> list[dict]:
    """Greedy pass over every conv tree gate (layer by layer, in place); returns per-layer stats."""
    model.eval()
    loss_fn = torch.nn.CrossEntropyLoss()
    stats = []
    for li, layer in enumerate(model):
        if not isinstance(layer, LogicConv2d):
            continue
        inputs = predict(model[:li], x)     # the layers before this one are fixed while it is refined
        suffix = model[li:]
        best = float(loss_fn(predict(suffix, inputs), y))
        start, changed, tried, t0 = best, 0, 0, time.time()
        w = layer.weights.data
        for o in range(w.shape[0]):
            for g in range(w.shape[1]):
                original = w[o, g].clone()
                keep = original
                for cand in alternatives(original, candidates):
                    w[o, g] = cand
                    loss = float(loss_fn(predict(suffix, inputs), y))
                    tried += 1
                    if loss < best - 1e-7:
                        best, keep = loss, cand
                w[o, g] = keep
                changed += int(keep is not original)
        stats.append({"layer": li, "gates": int(w.shape[0] * w.shape[1]), "tried": tried, "changed": changed,
                      "loss_before": start, "loss_after": best, "seconds": round(time.time() - t0, 1)})
        log(f"layer {li}: {changed} of {w.shape[0] * w.shape[1]} tree gates changed, circuit loss "
            f"{start:.4f} -> {best:.4f} ({time.time() - t0:.0f}s)")
    return stats


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: np.ndarray) -> float:
    return float((predict(model.eval(), x).argmax(1).numpy() == y).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--crop", type=int, default=0, help="pixels cut from each border (4 for the 20x20 variants)")
    ap.add_argument("--images", type=int, default=10000, help="training images in the objective (default 10000)")
    ap.add_argument("--candidates", type=int, default=2, help="alternatives tried per gate (default 2)")
    ap.add_argument("--passes", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="which training images (default 0)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    xtr, ytr, xte, yte = load_mnist(args.crop)
    pick = np.random.default_rng(args.seed).choice(len(xtr), args.images, replace=False)
    xs, ys = torch.from_numpy(xtr[pick]), torch.from_numpy(ytr[pick])
    xte_t = torch.from_numpy(xte)
    model = load_checkpoint(args.checkpoint)
    before = {"test": accuracy(model, xte_t, yte), "train_subset": accuracy(model, xs, ys.numpy()),
              "gates_O2": int(lgc.optimize(lgc.lower(model), level=2).num_gates)}
    print(f"before: test {before['test']:.4f}, training subset {before['train_subset']:.4f}, "
          f"{before['gates_O2']} O2 gates", flush=True)
    stats = []
    for _ in range(args.passes):
        stats += refine(model, xs, ys, args.candidates, log=lambda s: print(s, flush=True))
    circuit = lgc.lower(model)
    scores = lgc.ir.simulate(circuit, xte)
    tau = model[-1].tau
    exact = bool(np.array_equal(scores, torch.round(predict(model.eval(), xte_t) * tau).numpy().astype(np.int32)))
    after = {"test": accuracy(model, xte_t, yte), "train_subset": accuracy(model, xs, ys.numpy()),
             "gates_O2": int(lgc.optimize(circuit, level=2).num_gates), "lowered_bit_exact": exact}
    print(f"after:  test {after['test']:.4f}, training subset {after['train_subset']:.4f}, "
          f"{after['gates_O2']} O2 gates; lowered circuit equal to the model: {exact}", flush=True)
    src = pathlib.Path(args.checkpoint)
    save_checkpoint(model, src.with_name(src.stem + "_refined.pt"), extra={"refined_from": str(src)})
    OUT.mkdir(exist_ok=True)
    (OUT / f"conv_refine_{src.stem}.json").write_text(json.dumps(
        {"checkpoint": str(src), "command": "python experiments/conv_mnist/conv_refine.py " + " ".join(sys.argv[1:]),
         "images": args.images, "candidates": args.candidates, "passes": args.passes,
         "before": before, "after": after, "layers": stats}, indent=1))


if __name__ == "__main__":
    main()
