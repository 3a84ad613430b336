"""Retrain the fully connected end of a trained conv logic network as an ensemble of K independent
heads on the frozen hard conv features, all in one circuit, and report accuracy and gate counts.

Why: errors of separately trained conv circuits are largely independent (three 80-epoch models: 97.0-97.4%
alone, 98.1% summed), but three whole models cost three conv trunks. Here the trunk is trained once (by
``conv_mnist.py``) and frozen; K heads, each with its own wiring, initial logits and loss,
share its features. The K heads are one stack of wide ``LogicLayer``s with block wiring (head k reads
only head k's block) whose last layer is ordered so that one ``GroupSum`` adds each class over all
heads: the ensemble is an ordinary lgc model, lowered, optimised and compiled like any other.

    python experiments/conv_mnist/conv_heads.py /work/runs/conv4/model_i-seed3-unique-e80.pt --crop 4 \
        --heads 3 --widths 4000,4000 --epochs 30

The heads are trained with the sum of their own cross-entropies (``--joint``: one cross-entropy of
the summed scores instead, i.e. one wide block-wired head). The last epoch is reported; test data
selects nothing. Writes experiments/conv_mnist/out/conv_heads_<checkpoint>_<K>x<widths>.json and, with --save,
the whole model as an lgc checkpoint.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

import numpy as np
import torch
from torch import nn

import lgc
from lgc.frontend import GroupSum, LogicLayer, load_checkpoint, save_checkpoint
from lgc.frontend.connections import make_connections
from lgc.frontend.conv import OrPool2d

from lgc.training.diagnostics import split_at_features
from common import OUT, load_mnist, optimised_gates, predict


def ensemble_heads(in_dim: int, widths: list[int], heads: int, classes: int, tau: float, connections: str,
                   parametrization: str, seed: int) -> nn.Sequential:
    """K independent FC heads as one ``LogicLayer`` stack with block wiring, then one ``GroupSum``.

    Layer d has ``heads * widths[d]`` gates; head k's gates read the input (first layer) or head k's
    block of the layer before. The last layer's gates are ordered class-major, head-minor, so that
    GroupSum's contiguous groups add class c over all heads.
    """
    if widths[-1] % classes:
        raise ValueError(f"the last width must be a multiple of {classes}, got {widths[-1]}")
    layers: list[nn.Module] = []
    for depth, width in enumerate(widths):
        fan_in = in_dim if depth == 0 else widths[depth - 1]
        layer_in = in_dim if depth == 0 else heads * fan_in
        torch.manual_seed(seed * 1000 + depth)
        layer = LogicLayer(layer_in, heads * width, connections="random", parametrization=parametrization)
        a_all, b_all = [], []
        for k in range(heads):
            g = torch.Generator().manual_seed(seed * 1000 + 100 * k + depth)
            a, b = make_connections(connections, fan_in, width, g)
            offset = 0 if depth == 0 else k * fan_in
            a_all.append(a + offset)
            b_all.append(b + offset)
        a, b = torch.stack(a_all), torch.stack(b_all)          # [heads, width]
        if depth == len(widths) - 1:                            # class-major, head-minor output order
            per = width // classes
            a = a.reshape(heads, classes, per).transpose(0, 1).reshape(-1)
            b = b.reshape(heads, classes, per).transpose(0, 1).reshape(-1)
        layer.set_indices(a.reshape(-1), b.reshape(-1))
        layers.append(layer)
    return nn.Sequential(*layers, GroupSum(classes, tau))


def per_head_logits(heads_model: nn.Sequential, x: torch.Tensor, heads: int, classes: int) -> torch.Tensor:
    """[B, classes, heads]: each head's own GroupSum scores (the last layer is class-major, head-minor)."""
    y = heads_model[:-1](x)
    tau = heads_model[-1].tau
    return y.reshape(len(x), classes, heads, -1).sum(-1) / tau


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--crop", type=int, default=4, help="pixels cut from each border (4 for the 20x20 variants)")
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--widths", default="4000,4000")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--tau", type=float, default=None, help="GroupSum tau per head (default: the checkpoint's)")
    ap.add_argument("--parametrization", default=None, help="gates | inputwise (default: the checkpoint's)")
    ap.add_argument("--connections", default="unique")
    ap.add_argument("--unpooled", action="store_true", help="drop the trunk's last OR pool (more feature bits)")
    ap.add_argument("--joint", action="store_true", help="train on the summed scores instead of per-head losses")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save", default=None, help="write the whole model (trunk + heads) as an lgc checkpoint")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    widths = [int(w) for w in args.widths.split(",")]

    xtr, ytr, xte, yte = load_mnist(args.crop)
    model = load_checkpoint(args.checkpoint).eval()
    trunk, old_back = split_at_features(model)
    if args.unpooled:   # the last conv block's outputs before its OR pool: 4x the feature bits, no pool gates
        last_pool = max(i for i, m in enumerate(trunk) if isinstance(m, OrPool2d))
        trunk = nn.Sequential(*trunk[:last_pool], *trunk[last_pool + 1:])
    old_layer = next(m for m in old_back if isinstance(m, LogicLayer))
    tau = args.tau if args.tau is not None else old_back[-1].tau
    parametrization = args.parametrization or old_layer.parametrization
    ftr, fte = predict(trunk, xtr), predict(trunk, xte)      # hard conv features, computed once
    back = ensemble_heads(ftr.shape[1], widths, args.heads, 10, tau, args.connections, parametrization, args.seed)

    opt = torch.optim.Adam(back.parameters(), lr=args.lr)
    steps = len(ftr) // args.batch
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * steps)
    rng, labels, loss_fn = np.random.default_rng(args.seed), torch.from_numpy(ytr), nn.CrossEntropyLoss()
    history, t0 = [], time.time()
    back.train()
    for epoch in range(1, args.epochs + 1):
        perm = torch.from_numpy(rng.permutation(len(ftr)))
        for i in range(steps):
            idx = perm[i * args.batch:(i + 1) * args.batch]
            if args.joint:
                loss = loss_fn(back(ftr[idx]), labels[idx])
            else:
                logits = per_head_logits(back, ftr[idx], args.heads, 10)
                loss = sum(loss_fn(logits[:, :, k], labels[idx]) for k in range(args.heads))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
        back.eval()
        acc = float((predict(back, ftr[:5000]).argmax(1).numpy() == ytr[:5000]).mean())
        back.train()
        history.append({"epoch": epoch, "train5000": acc, "s": round(time.time() - t0, 1)})
        print(f"epoch {epoch}: train[:5000] {acc:.4f} ({time.time() - t0:.0f}s)", flush=True)
    train_s = time.time() - t0

    back.eval()
    full = nn.Sequential(*trunk, *back).eval()
    with torch.no_grad():
        head_scores = torch.cat([per_head_logits(back, fte[i:i + 2000], args.heads, 10) for i in range(0, len(fte), 2000)])
    per_head = [float((head_scores[:, :, k].argmax(1).numpy() == yte).mean()) for k in range(args.heads)]
    full_scores = predict(full, xte)
    test_acc = float((full_scores.argmax(1).numpy() == yte).mean())
    circuit = lgc.lower(full)
    scores = lgc.ir.simulate(circuit, xte)
    ref = torch.round(full_scores * tau).numpy().astype(np.int32)
    small = lgc.optimize(circuit, level=2)
    net = lgc.compile(small, target="cpu")
    compiled_equal = bool(np.array_equal(net(circuit.input_encoder.encode(xte)), scores))
    trunk_gates = optimised_gates(trunk)
    result = {
        "command": "python experiments/conv_mnist/conv_heads.py " + " ".join(sys.argv[1:]),
        "machine": {"cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(), "threads": args.threads},
        "checkpoint": args.checkpoint, "heads": args.heads, "widths": widths, "tau": tau, "joint": args.joint,
        "unpooled": args.unpooled, "parametrization": parametrization, "connections": args.connections, "epochs": args.epochs, "lr": args.lr,
        "seed": args.seed, "train_s": round(train_s, 1), "history": history,
        "test_accuracy_per_head": per_head, "test_accuracy_eval_mode": test_acc,
        "circuit_accuracy": float((scores.argmax(1) == yte).mean()),
        "lowered_bit_exact": bool(np.array_equal(scores, ref)), "compiled_equal_to_oracle": compiled_equal,
        "nominal_gates": int(circuit.num_gates), "optimised_gates_O2": int(small.num_gates),
        "trunk_gates_O2": trunk_gates,
    }
    for k in ("test_accuracy_per_head", "test_accuracy_eval_mode", "lowered_bit_exact", "compiled_equal_to_oracle",
              "nominal_gates", "optimised_gates_O2", "trunk_gates_O2", "train_s"):
        print(f"{k:26s} {result[k]}")
    OUT.mkdir(exist_ok=True)
    stem = f"conv_heads_{pathlib.Path(args.checkpoint).stem}_{args.heads}x{args.widths.replace(',', '-')}"
    stem += ("_joint" if args.joint else "") + ("_unpooled" if args.unpooled else "")
    (OUT / f"{stem}_s{args.seed}.json").write_text(json.dumps(result, indent=1))
    if args.save:
        save_checkpoint(full, args.save, extra={"arch": "experiments/conv_mnist/conv_heads.py", "source": args.checkpoint})


if __name__ == "__main__":
    main()
