"""Training step time (forward + backward + Adam) of lgc's LogicLayer implementations against the
naive 16-temporaries formulation of difflogic's python path, on MNIST-shaped models.

Run: ``python benchmarks/train_step.py`` (no arguments needed). Prints ms/step per implementation
and the ratio to the naive baseline, writes ``benchmarks/out/train_step.json``, and states the
machine (cores, CPU flags, load). All implementations run side by side in one process on the same
model shape, data and optimiser, one step each in turn (so load changes on a shared machine hit
all alike); figures are medians over the timed steps.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time

import torch
from torch import nn

from lgc.frontend import GroupSum, LogicLayer, kernels


# -- the baseline: difflogic's python path, as written there (16 real-valued ops, then a weighted sum) --
def bin_op(a: torch.Tensor, b: torch.Tensor, i: int) -> torch.Tensor:
    if i == 0:
        return torch.zeros_like(a)
    if i == 1:
        return a * b
    if i == 2:
        return a - a * b
    if i == 3:
        return a
    if i == 4:
        return b - a * b
    if i == 5:
        return b
    if i == 6:
        return a + b - 2 * a * b
    if i == 7:
        return a + b - a * b
    if i == 8:
        return 1 - (a + b - a * b)
    if i == 9:
        return 1 - (a + b - 2 * a * b)
    if i == 10:
        return 1 - b
    if i == 11:
        return 1 - b + a * b
    if i == 12:
        return 1 - a
    if i == 13:
        return 1 - a + a * b
    if i == 14:
        return 1 - a * b
    return torch.ones_like(a)


def bin_op_s(a: torch.Tensor, b: torch.Tensor, i_s: torch.Tensor) -> torch.Tensor:
    r = torch.zeros_like(a)
    for i in range(16):
        r = r + i_s[..., i] * bin_op(a, b, i)
    return r


class NaiveLogicLayer(nn.Module):
    """difflogic's LogicLayer.forward_python in train mode."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.weights = nn.Parameter(torch.randn(out_dim, 16))
        c = torch.randperm(2 * out_dim) % in_dim
        c = torch.randperm(in_dim)[c].reshape(2, out_dim)
        self.indices = (c[0], c[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x[..., self.indices[0]], x[..., self.indices[1]]
        return bin_op_s(a, b, torch.softmax(self.weights, dim=-1))


def make_model(impl: str, in_dim: int, width: int, depth: int, k: int, tau: float, device: str) -> nn.Module:
    dims = [in_dim] + [width] * depth
    if impl == "naive":
        layers = [NaiveLogicLayer(i, o) for i, o in zip(dims, dims[1:])]
    else:
        layers = [LogicLayer(i, o, implementation=impl) for i, o in zip(dims, dims[1:])]
    return nn.Sequential(nn.Flatten(), *layers, GroupSum(k, tau)).to(device)


class Trainer:
    """One model, its Adam optimiser and a fixed batch; ``step()`` returns its wall time in ms."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        self.model, self.x, self.y = model, x, y
        self.opt = torch.optim.Adam(model.parameters(), lr=0.01)
        self.loss_fn = nn.CrossEntropyLoss()
        self.sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)

    def step(self) -> float:
        self.sync()
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()
        self.sync()
        return (time.perf_counter() - t0) * 1e3


def time_interleaved(trainers: dict[str, Trainer], steps: int, warmup: int) -> dict[str, list[float]]:
    """Round-robin one step per implementation, so a change in machine load hits all of them alike."""
    for t in trainers.values():
        for _ in range(warmup):
            t.step()
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(steps):
        for name, t in trainers.items():
            times[name].append(t.step())
    return times


def machine() -> dict:
    info = {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
            "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith("model name"))
        flags = next(l.split(":", 1)[1].split() for l in text.splitlines() if l.startswith("flags"))
        info["cpu_flags"] = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl") if f in flags]
        info["loadavg_1m"] = os.getloadavg()[0]
    except (OSError, StopIteration):
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="only the 6 x 8000 model")
    parser.add_argument("--threads", type=int, default=0, help="torch/OpenMP threads (default: torch's, all cores)")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "out" / "train_step.json"))
    args = parser.parse_args()

    configs = [("mnist 784-6x8000-10", 784, 8000, 6, 100)]
    if not args.quick:
        configs.append(("large 784-8x16000-10", 784, 16000, 8, 100))
    impls = ["naive", "python"]
    reason = kernels.cpu_kernel_unavailable()
    if reason is None:
        impls.append("cpu")
    else:
        print("cpu kernel unavailable:", reason)
    devices = {"naive": "cpu", "python": "cpu", "cpu": "cpu"}
    if torch.cuda.is_available():
        impls += ["naive-cuda", "cuda"]
        devices.update({"naive-cuda": "cuda", "cuda": "cuda"})
    if args.threads:
        torch.set_num_threads(args.threads)

    info = machine()
    print("machine:", json.dumps(info))
    results = []
    for name, in_dim, width, depth, batch in configs:
        torch.manual_seed(0)
        x_cpu = torch.rand(batch, 28, 28)
        y_cpu = torch.randint(0, 10, (batch,))
        trainers = {}
        for impl in impls:
            dev = devices[impl]
            model = make_model(impl.replace("naive-cuda", "naive"), in_dim, width, depth, 10, 30.0, dev)
            trainers[impl] = Trainer(model, x_cpu.to(dev), y_cpu.to(dev))
        times = time_interleaved(trainers, args.steps, args.warmup)
        del trainers
        row = {"model": name, "batch": batch, "ms_per_step": {k: statistics.median(v) for k, v in times.items()},
               "ms_all": times}
        for impl, ms in row["ms_per_step"].items():
            print(f"  {name:24s} {impl:11s} {ms:9.1f} ms/step", flush=True)
        base = row["ms_per_step"]["naive"]
        row["speedup_vs_naive"] = {k: base / v for k, v in row["ms_per_step"].items()}
        results.append(row)
    info["loadavg_1m_after"] = os.getloadavg()[0]

    print(f"\n{'model':24s} {'impl':11s} {'ms/step':>9s} {'vs naive':>9s}")
    for row in results:
        for impl, ms in row["ms_per_step"].items():
            ref = row["ms_per_step"]["naive-cuda" if impl in ("cuda", "naive-cuda") else "naive"]
            print(f"{row['model']:24s} {impl:11s} {ms:9.1f} {ref / ms:8.1f}x")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "command": " ".join(["python"] + sys.argv), "steps": args.steps,
                               "warmup": args.warmup, "results": results}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
