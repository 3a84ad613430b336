"""Where does a conv logic network lose accuracy when it is discretised? For a conv MNIST checkpoint
(``lgc train --arch conv`` or conv_mnist.py), print ``lgc.training.discretisation_gap`` on the test set:
every layer soft (train mode), conv layers hard and FC layers soft, fully hard (eval mode = the
circuit); then optionally fine-tune the FC layers on the frozen hard conv features and report the
test accuracy again.

    python experiments/conv_mnist/conv_gap.py RUN/best.pt --crop 4 [--finetune-epochs 8 --lr 0.005]

Writes experiments/conv_mnist/out/conv_gap_<checkpoint name>.json. The fine-tuned model is not saved.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np
import torch

from lgc.frontend import load_checkpoint
from lgc.training import discretisation_gap
from lgc.training.diagnostics import split_at_features

from common import OUT, load_mnist, optimised_gates, predict


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: np.ndarray) -> float:
    """Accuracy in the model's current mode."""
    return float((predict(model, x).argmax(1).numpy() == y).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--crop", type=int, default=0, help="pixels cut from each border (4 for the 20x20 variants)")
    ap.add_argument("--finetune-epochs", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    xtr, ytr, xte, yte = load_mnist(args.crop)
    xtr_t, xte_t = torch.from_numpy(xtr), torch.from_numpy(xte)
    model = load_checkpoint(args.checkpoint)
    front, back = split_at_features(model)
    result: dict = {"checkpoint": args.checkpoint,
                    "command": "python experiments/conv_mnist/conv_gap.py " + " ".join(sys.argv[1:])}
    result.update({f"test_{k}": v for k, v in discretisation_gap(model, xte, yte).items()})
    if args.finetune_epochs:
        ftr, fte = predict(front, xtr_t), predict(front, xte_t)   # the hard conv features are fixed: once
        back.train()
        opt = torch.optim.Adam(back.parameters(), lr=args.lr)
        steps = len(ftr) // 128
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.finetune_epochs * steps)
        rng, labels, loss_fn, t0 = np.random.default_rng(1), torch.from_numpy(ytr), torch.nn.CrossEntropyLoss(), time.time()
        for _ in range(args.finetune_epochs):
            perm = torch.from_numpy(rng.permutation(len(ftr)))
            for i in range(steps):
                idx = perm[i * 128:(i + 1) * 128]
                loss = loss_fn(back(ftr[idx]), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
        back.eval()
        result.update(finetune_epochs=args.finetune_epochs, finetune_lr=args.lr, finetune_s=round(time.time() - t0, 1),
                      test_after_fc_finetune=accuracy(back, fte, yte), train_after_fc_finetune=accuracy(back, ftr, ytr),
                      optimised_gates_O2_after=optimised_gates(model))
    for k, v in result.items():
        print(f"{k:28s} {v}")
    OUT.mkdir(exist_ok=True)
    (OUT / f"conv_gap_{pathlib.Path(args.checkpoint).stem}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
