"""Training step time (forward + backward + Adam) of lgc's fused CPU kernel at 1 and 2 threads, beside
lgc's ``python`` implementation and the naive 16-temporaries formulation of difflogic's python path,
on MNIST-shaped models, with the step's breakdown and its distance from the memory-bandwidth limit.
The fused kernel runs three ways, side by side: ``cpu`` (an ``nn.Sequential``: one kernel call per
layer and direction), ``stack`` (a ``LogicSequential``, what ``build_model`` returns: the whole run
of layers and its GroupSum in one call per direction, ``lgc.frontend.stack``, under autograd) and
``fused`` (what ``lgc train`` takes: ``lgc.frontend.fused_step.FusedTrainStep``, forward, loss,
backward and Adam in one call per step, no autograd).

Run: ``python benchmarks/train_step.py`` (no arguments needed; ``--quick`` for the 6 x 8000 model at
batch 100 only; ``--conv`` instead times the README's conv MNIST recipe, OrPool2d's CPU kernel beside
torch's max_pool2d, with a breakdown: it needs MNIST in ``$LGC_DATA_DIR``). For each model (784 -> 6 x 8000 and 8 x 16000 -> GroupSum(10)) and batch (100,
256, 1024) it prints ms/step (wall, and CPU time of all threads) and samples/s per implementation
and thread count, the 2-thread speed-up, and the step time the memory traffic alone would take
(bytes moved per step / measured streaming bandwidth) as a fraction of the measured step, against
two bandwidths: DRAM (512 MiB per thread) and the last-level cache (12 MiB in all), with which of
the two applies (a layer's x, grad_y and grad_x within half the last-level cache: the cache). Then
a breakdown of the cpu step (layer kernels, softmax, Adam, loss, the rest) from torch's profiler,
and the machine (cores, CPU flags, cache, load before and after). Writes
``benchmarks/out/train_step.json``.

Method: every implementation/thread-count pair trains its own copy of the model (same seed, data
and optimiser settings) and they take one step each in turn, so a change in machine load hits all
alike (the cpu pairs in one round, then the baselines in another: the baselines' spinning OpenMP
threads would take a core from the cpu step after them); figures are medians over the timed steps. The cpu kernel runs with torch's own threads at 1
(``kernels.set_num_threads`` sets the kernel's pool; torch's OpenMP threads spinning after its
small ops would otherwise compete with the pool for the same cores) and ``lgc.frontend.optim.Adam``
(one pass over the logits and both moments on the kernel's pool, what ``lgc train`` uses).
``python`` and ``naive`` use torch's threads and ``torch.optim.Adam(fused=True)``, so the comparison
is of the layers.
"""
from __future__ import annotations

import argparse
import json
import resource
import threading
import os
import pathlib
import platform
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

from lgc.frontend import GroupSum, LogicLayer, kernels, optim
from lgc.frontend.fused_step import FusedTrainStep
from lgc.frontend.stack import LogicSequential


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



def make_model(impl: str, in_dim: int, width: int, depth: int, k: int, tau: float) -> nn.Module:
    torch.manual_seed(0)
    dims = [in_dim] + [width] * depth
    if impl == "naive":
        layers = [NaiveLogicLayer(i, o) for i, o in zip(dims, dims[1:])]
    else:  # stack: the cpu kernel with the layers fused into one call per direction (LogicSequential)
        layers = [LogicLayer(i, o, implementation="cpu" if impl in ("stack", "fused") else impl)
                  for i, o in zip(dims, dims[1:])]
    return (LogicSequential if impl in ("stack", "fused") else nn.Sequential)(nn.Flatten(), *layers, GroupSum(k, tau))


# the fused kernel: per layer (cpu), one call per direction for the whole stack (stack), one call
# per training step (fused)
FUSED = ("cpu", "stack", "fused")


class Trainer:
    """One model, its Adam optimiser, a fixed batch and a thread count; ``step()`` returns wall ms."""

    def __init__(self, impl: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, threads: int):
        self.impl, self.model, self.x, self.y, self.threads = impl, model, x, y, threads
        # the cpu step: Adam on the kernels' pool (what `lgc train` uses for CPU parameters)
        adam = optim.Adam if impl in FUSED else torch.optim.Adam
        self.opt = adam(model.parameters(), lr=0.01, fused=True)
        self.loss_fn = nn.CrossEntropyLoss()
        self.fused_step = FusedTrainStep(model, self.opt) if impl == "fused" else None
        self.faults: list[int] = []
        self.cpu_ms: list[float] = []  # process CPU time per step (all threads): robust to other load

    def set_threads(self) -> None:
        kernels.set_num_threads(self.threads)
        torch.set_num_threads(1 if self.impl in FUSED else self.threads)

    def step(self) -> float:
        self.set_threads()
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        c0 = time.process_time()
        t0 = time.perf_counter()
        if self.fused_step is not None:
            self.fused_step(self.x, self.y)
        else:
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.model(self.x), self.y)
            loss.backward()
            self.opt.step()
        ms = (time.perf_counter() - t0) * 1e3
        self.cpu_ms.append((time.process_time() - c0) * 1e3)
        self.faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
        return ms


def time_interleaved(trainers: dict[str, Trainer], steps: int, warmup: int) -> dict[str, list[float]]:
    """Round-robin one step per trainer, so a change in machine load hits all of them alike."""
    for t in trainers.values():
        for _ in range(warmup):
            t.step()
        t.faults.clear()
        t.cpu_ms.clear()
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(steps):
        for name, t in trainers.items():
            times[name].append(t.step())
    return times


# -- the memory-bandwidth limit ------------------------------------------------------------------
def bytes_per_step(in_dim: int, width: int, depth: int, batch: int, itemsize: int = 4) -> dict[str, int]:
    """Bytes the cpu kernels must move per step (each array read or written once where it is used).

    Activations ``[features, batch]``: the forward reads two rows and writes one per gate; the
    backward (gather over input features) reads grad_y twice and each operand once per gate and
    reads x and writes grad_x once per input feature (the first layer, with no input gradient,
    reads three rows per gate). Per-gate state: the softmax reads 16 logits and writes 16
    probabilities and 4 coefficients; its backward reads the probabilities and 4 coefficient
    gradients and writes 16 logit gradients; fused Adam reads logits, gradients and both moments
    and writes logits and moments (7 x 16 values).
    """
    row = batch * itemsize
    dims = [in_dim] + [width] * depth
    act = sum(3 * o * row for o in dims[1:])                                    # forward
    act += 3 * width * row + sum(4 * o * row + 2 * i * row for i, o in zip(dims[1:], dims[2:]))  # backward
    gates = width * depth
    state = gates * itemsize * ((16 + 16 + 4) + (16 + 4 + 16) + 7 * 16)
    return {"activations": act, "state": state, "total": act + state}


def streaming_bandwidth(threads: int, mib: float = 512, repeats: int = 3, passes: int = 1) -> float:
    """Best-of-``repeats`` bytes/s of ``threads`` concurrent sums, each ``passes`` times over its own
    ``mib`` MiB. DRAM (the default 512 MiB, one pass): numpy float64 sums, as measured before. A
    cache-resident size (a few MiB per thread, passes > 1): torch float32 sums on the calling thread
    (AVX2, several accumulators), since numpy's pairwise sum is compute-bound once the data is in cache."""
    if passes == 1:
        arrays = [np.ones(int(mib * 2**20) // 8) for _ in range(threads)]
        nbytes = arrays[0].nbytes
    else:
        arrays = [torch.ones(int(mib * 2**20) // 4) for _ in range(threads)]
        nbytes = arrays[0].numel() * 4

    def read(a: np.ndarray | torch.Tensor) -> None:
        for _ in range(passes):
            a.sum()  # numpy and torch release the GIL in sum

    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # each worker's torch sum on its own thread
    try:
        for a in arrays:
            a.sum()  # resident (and in cache when it fits) before the timing
        best = 0.0
        for _ in range(repeats):
            workers = [threading.Thread(target=read, args=(a,)) for a in arrays]
            t0 = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            best = max(best, threads * passes * nbytes / (time.perf_counter() - t0))
    finally:
        torch.set_num_threads(previous)
    return best


def compute_scaling(seconds: float = 0.3) -> float:
    """Throughput of two threads of cache-resident compute (sin and exp over 64K floats, ~0.17 ms a
    round, on torch's one thread each with the GIL released; not matmuls: a single-threaded BLAS
    serialises them) over one thread's, measured now: ~2.0 when the VM's two vCPUs run on two cores,
    less when the host gives them less (one core's two hyperthreads, other guests), which it may
    change from one minute to the next. Printed beside each block of rows: it tells a host-side
    drop in the 2-thread speed-up from a slower kernel."""
    def work(count: list[int], until: float) -> None:
        a = torch.rand(1 << 16)
        b = torch.empty_like(a)
        while time.perf_counter() < until:
            torch.sin(a, out=b)
            torch.exp(b, out=a)
            count[0] += 1

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rates = []
        for n in (1, 2):
            counts = [[0] for _ in range(n)]
            until = time.perf_counter() + seconds
            workers = [threading.Thread(target=work, args=(c, until)) for c in counts]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            rates.append(sum(c[0] for c in counts))
    finally:
        torch.set_num_threads(previous)
    return rates[1] / max(1, rates[0])


def steal_seconds() -> float:
    """CPU time the hypervisor took from this VM's vCPUs so far (``/proc/stat`` steal, all CPUs), or
    0 where unknown: what a row's 2-thread figure lost when the host ran another guest on our cores."""
    try:
        fields = pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def last_level_cache_bytes() -> int | None:
    """Size of the CPU's last-level cache (Linux sysfs), or None where unknown."""
    best = None
    for index in sorted(pathlib.Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        best = int(text.rstrip("KMG")) * scale if text[-1:] in "KMG" else int(text)
    return best


def layer_working_set(width: int, batch: int, itemsize: int = 4) -> int:
    """Bytes one hidden layer's backward touches: its input x, grad_y and grad_x ([width, batch]
    each), which decides whether its random row reads hit the last-level cache or DRAM."""
    return 3 * width * batch * itemsize


# -- where the step's time goes ----------------------------------------------------------------------
CATEGORIES = (("layer forward", ("_KernelLogic", "_LogicStack")),
              ("layer backward", ("_KernelLogicBackward", "_LogicStackBackward")),
              ("softmax forward", ("_CpuCoefficients",)), ("softmax backward", ("_CpuCoefficientsBackward",)),
              ("GroupSum", ("_FeatureMajorGroupSum", "_FeatureMajorGroupSumBackward")),
              ("Adam (fused)", ("Optimizer.step",)), ("zero_grad", ("Optimizer.zero_grad",)))


def breakdown(trainer: Trainer, steps: int = 3) -> dict[str, float]:
    """ms per step by category from torch's profiler (self time of each kernel's autograd node;
    Adam as the optimizer step's total); ``other`` is the rest of the step: GroupSum, loss, copies,
    allocation and the Python and autograd glue."""
    from torch.profiler import ProfilerActivity, profile
    trainer.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            trainer.step()
        wall = (time.perf_counter() - t0) * 1e3 / steps
    events = prof.key_averages()
    out: dict[str, float] = {}
    for label, names in CATEGORIES:
        total = 0.0
        for e in events:
            if e.key in names or any(e.key.startswith(n + "#") for n in names):
                t = e.cpu_time_total if e.key.startswith("Optimizer") else e.self_cpu_time_total
                total += t / 1e3 / steps
        out[label] = total
    out["other (GroupSum, loss, glue)"] = max(0.0, wall - sum(out.values()))
    out["step (profiled)"] = wall
    return out


FUSED_PHASES = ("softmax", "input", "layers", "head", "loss", "backward", "reduce")


def fused_breakdown(trainer: Trainer, steps: int = 5) -> dict[str, float]:
    """ms per step of the fused step's phases, from the extension's own clock (``stack_phase_times``:
    the step is one extension call): every layer's softmax, the input transpose, the hidden layers'
    forward, the last layer with the GroupSum, the loss, the backward through the layers, and the
    coefficient gradients' reduction with the softmax backward and Adam; ``rest`` is the remainder of
    the step (argument checks, allocation, the Python around the call)."""
    trainer.step()  # loads the kernel, if no step has yet
    module = kernels.loaded_cpu_backend().module
    module.stack_phase_times()  # zero the clock
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    wall = (time.perf_counter() - t0) * 1e3 / steps
    out = {k: v * 1e3 / steps for k, v in module.stack_phase_times().items()}
    out["rest"] = max(0.0, wall - sum(out.values()))
    out["step (timed)"] = wall
    return out


def machine() -> dict:
    info = {"python": sys.version.split()[0], "torch": torch.__version__, "platform": platform.platform(),
            "cores": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(l.split(":", 1)[1].strip() for l in text.splitlines() if l.startswith("model name"))
        flags = next(l.split(":", 1)[1].split() for l in text.splitlines() if l.startswith("flags"))
        info["cpu_flags"] = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl") if f in flags]
    except (OSError, StopIteration):
        pass
    info["loadavg_before"] = os.getloadavg()
    return info


MODELS = {"6x8000": (784, 8000, 6), "8x16000": (784, 16000, 8)}


# -- the conv recipe (README, "Command line"): where its step goes, and OrPool2d's kernel ---------------
class TorchOrPool(nn.Module):
    """OrPool2d as torch's ``F.max_pool2d`` (what OrPool2d ran before its CPU kernel), for the side-by-side."""

    def __init__(self, pool: nn.Module):
        super().__init__()
        self.kernel_size, self.stride = pool.kernel_size, pool.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.max_pool2d(x, self.kernel_size, self.stride)


CONV_CATEGORIES = (("tree conv forward", ("_TreeConv",)), ("tree conv backward", ("_TreeConvBackward",)),
                   ("OR pool", ("_OrPool", "_OrPoolBackward", "aten::max_pool2d_with_indices",
                                "aten::max_pool2d_with_indices_backward")),
                   ("FC layers", ("_KernelLogic", "_KernelLogicBackward", "_LogicStack", "_LogicStackBackward")),
                   ("Adam (fused)", ("Optimizer.step",)))


def conv_recipe(args: argparse.Namespace, threads: list[int]) -> None:
    """ms/step of the README's conv MNIST recipe (mnist20x20, levels:3, 2 tree-conv blocks of 12/48
    channels, no last pool, input-wise logits, 2 x 8000 FC, batch 128) at each thread count, with
    OrPool2d on the conv kernel and as torch's max_pool2d side by side, and a profiler breakdown."""
    from torch.profiler import ProfilerActivity, profile

    from lgc.frontend import OrPool2d
    from lgc.training import TrainConfig
    from lgc.training.config import ConvConfig
    from lgc.training.models import build_logic_model, load_training_data
    from lgc.training.trainer import _adam
    data_dir = args.data_dir or os.environ.get("LGC_DATA_DIR")
    cfg = TrainConfig(dataset="mnist20x20", binarize="levels:3", arch="conv",
                      conv=ConvConfig(channels=12, padding=0, residual=2.0, last_pool=False),
                      parametrization="inputwise", num_neurons=8000, num_layers=2, tau=10.0, batch_size=128,
                      learning_rate=0.02, data_dir=data_dir, download=False, device="cpu")
    try:
        data, _ = load_training_data(cfg)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise SystemExit(f"the conv recipe needs MNIST (--data-dir or LGC_DATA_DIR): {e}")
    x, y = torch.from_numpy(data.x_train[:128]), torch.from_numpy(data.y_train[:128])
    trainers: dict[str, Trainer] = {}
    for pool in ("kernel", "torch"):
        for t in threads:
            torch.manual_seed(0)
            model = build_logic_model(cfg, data, "cpu")
            if pool == "torch":
                for i, m in enumerate(model):
                    if isinstance(m, OrPool2d):
                        model[i] = TorchOrPool(m)
            trainer = Trainer("cpu", model, x, y, t)
            trainer.opt = _adam(model.parameters(), cfg.learning_rate)
            trainers[f"{pool} {t}"] = trainer
    times = time_interleaved(trainers, args.steps, args.warmup)
    print(f"\nconv recipe (batch 128, load {os.getloadavg()[0]:.1f}): ms/step (samples/s)")
    result: dict = {"impls": {}}
    for name, t in trainers.items():
        ms = statistics.median(times[name])
        result["impls"][name] = {"ms_per_step": ms, "samples_per_s": 128 / ms * 1e3, "ms_all": times[name]}
        print(f"  pool {name:9s} {ms:8.1f} ms ({128 / ms * 1e3:7.0f} samples/s)")
    if 1 in threads and 2 in threads:
        for pool in ("kernel", "torch"):
            ratio = times_ratio = (statistics.median(times[f"{pool} 1"]) / statistics.median(times[f"{pool} 2"]))
            result[f"{pool}_2_vs_1_threads"] = times_ratio
            print(f"  pool {pool}: 2 threads / 1 thread {ratio:.2f}x")
    for t in threads:
        r = statistics.median(times[f"torch {t}"]) / statistics.median(times[f"kernel {t}"])
        result[f"kernel_vs_torch_{t}"] = r
        print(f"  OrPool2d kernel / max_pool2d at {t} thread{'s' * (t > 1)}: {r:.2f}x")
    print(f"{'pool':6s} {'thr':>3s} " + " ".join(f"{label[:18]:>18s}" for label, _ in CONV_CATEGORIES)
          + f" {'other':>8s} {'step':>8s}")
    result["breakdown"] = []
    for name, trainer in trainers.items():
        trainer.step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            for _ in range(3):
                trainer.step()
            wall = (time.perf_counter() - t0) * 1e3 / 3
        events = prof.key_averages()
        row = {}
        for label, names in CONV_CATEGORIES:
            row[label] = sum((e.cpu_time_total if e.key.startswith("Optimizer") else e.self_cpu_time_total) / 1e3 / 3
                             for e in events if e.key in names or any(e.key.startswith(n + "#") for n in names))
        row["other"] = max(0.0, wall - sum(row.values()))
        row["step (profiled)"] = wall
        result["breakdown"].append({"impl": name, "ms": row})
        pool, t = name.split()
        print(f"{pool:6s} {t:>3s} " + " ".join(f"{row[label]:18.2f}" for label, _ in CONV_CATEGORIES)
              + f" {row['other']:8.2f} {wall:8.2f}")
    out = pathlib.Path(args.out).with_name("train_step_conv.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "command": " ".join(["python"] + sys.argv), **result}, indent=2))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="only the 6 x 8000 model at batch 100")
    parser.add_argument("--threads", default="1,2", help="thread counts to compare (default 1,2)")
    parser.add_argument("--batches", default="100,256,1024")
    parser.add_argument("--baseline-batches", default="100",
                        help="batches at which naive and python run too (they need 16 / 3 temporaries per layer)")
    parser.add_argument("--bandwidth", default="",
                        help="GB/s of 1 and 2 threads to use for the limit (e.g. '32,54', measured on a quiet "
                             "host) instead of this run's measurement, which a loaded host depresses")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "out" / "train_step.json"))
    parser.add_argument("--conv", action="store_true",
                        help="instead: the conv MNIST recipe's step, OrPool2d's kernel beside max_pool2d (needs MNIST)")
    parser.add_argument("--data-dir", default=None, help="MNIST for --conv (default: $LGC_DATA_DIR)")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    if args.conv:
        conv_recipe(args, threads)
        return
    batches = [100] if args.quick else [int(b) for b in args.batches.split(",")]
    baseline_batches = {int(b) for b in args.baseline_batches.split(",") if b}
    models = {"6x8000": MODELS["6x8000"]} if args.quick else MODELS
    reason = kernels.cpu_kernel_unavailable()
    if reason is not None:
        raise SystemExit(f"the cpu kernel is unavailable: {reason}")

    info = machine()
    print("machine:", json.dumps(info), flush=True)
    measured = {t: streaming_bandwidth(t) for t in sorted(set(threads) | {1, 2})}
    print("streaming bandwidth, DRAM (numpy sums over 512 MiB per thread, best of 3): "
          + ", ".join(f"{t} thread{'s' * (t > 1)} {bw / 1e9:.1f} GB/s" for t, bw in measured.items()), flush=True)
    llc = last_level_cache_bytes()
    cache_mib = 12.0  # per run, split between the threads: resident in a >= 16 MiB last-level cache
    cached = {t: streaming_bandwidth(t, cache_mib / t, repeats=5, passes=20) for t in sorted(set(threads) | {1, 2})}
    print(f"streaming bandwidth, cache-resident (torch sums over {cache_mib:g} MiB in all, 20 passes, best of 5; "
          f"last-level cache "
          f"{(llc or 0) / 2**20:.0f} MiB): "
          + ", ".join(f"{t} thread{'s' * (t > 1)} {bw / 1e9:.1f} GB/s" for t, bw in cached.items()), flush=True)
    info["last_level_cache_bytes"] = llc
    bandwidth = dict(measured)
    if args.bandwidth:
        given = [float(v) * 1e9 for v in args.bandwidth.split(",")]
        bandwidth = {t: given[min(t, len(given)) - 1] for t in measured}
        print("the limit uses the given bandwidth: " + ", ".join(f"{t}: {bw / 1e9:.1f} GB/s" for t, bw in bandwidth.items()))

    results, breakdowns, fused_breakdowns = [], [], []
    for model_name, (in_dim, width, depth) in models.items():
        for batch in batches:
            torch.manual_seed(0)
            x = torch.rand(batch, 28, 28)
            y = torch.randint(0, 10, (batch,))
            impls = ["cpu", "stack", "fused"] + (["python", "naive"] if batch in baseline_batches else [])
            trainers = {f"{impl} {t}": Trainer(impl, make_model(impl, in_dim, width, depth, 10, 30.0), x, y, t)
                        for impl in impls for t in threads}
            load0 = os.getloadavg()[0]
            scaling0 = compute_scaling()
            steal0, wall0 = steal_seconds(), time.perf_counter()
            # the cpu trainers interleave among themselves, the baselines among themselves: torch's
            # OpenMP threads keep spinning for a while after a multi-threaded baseline step and took
            # the second core from the cpu step that followed (1-thread step 14.5 ms with the
            # baselines interleaved, 12.4 ms without, same load)
            times = time_interleaved({n: t for n, t in trainers.items() if t.impl in FUSED}, args.steps, args.warmup)
            times.update(time_interleaved({n: t for n, t in trainers.items() if t.impl not in FUSED}, args.steps,
                                          args.warmup))
            for name, t in trainers.items():
                if t.fused_step is not None and t.fused_step.fused_steps == 0:
                    raise SystemExit(f"{name}: the fused step did not apply ({t.fused_step.unsupported(t.x, t.y)})")
            need = bytes_per_step(in_dim, width, depth, batch)
            steal = (steal_seconds() - steal0) / max(1e-9, time.perf_counter() - wall0)
            scaling = [scaling0, compute_scaling()]
            print(f"  {model_name:8s} batch {batch:5d} two threads of compute now run {scaling[0]:.2f}x / "
                  f"{scaling[1]:.2f}x one (before / after these rows; ~2 on two real cores); the host took "
                  f"{steal:.2f} of a core meanwhile (steal)", flush=True)
            row = {"model": model_name, "batch": batch, "loadavg_1m": [load0, os.getloadavg()[0]],
                   "compute_2_vs_1_threads": scaling, "steal_cores": steal,
                   "bytes_per_step": need, "impls": {}}
            working = layer_working_set(width, batch)
            # a layer whose x, grad_y and grad_x fit in the last-level cache reads its random rows from
            # there: that bandwidth is its limit; larger ones stream from DRAM
            row["layer_working_set_bytes"] = working
            row["limit_applies"] = "cache" if llc is not None and working <= llc / 2 else "dram"
            for name, t in trainers.items():
                ms = statistics.median(times[name])
                limit_ms = need["total"] / bandwidth[t.threads] * 1e3
                cache_limit_ms = need["total"] / cached[t.threads] * 1e3
                row["impls"][name] = {"ms_per_step": ms, "samples_per_s": batch / ms * 1e3, "ms_all": times[name],
                                      "cpu_ms_per_step": statistics.median(t.cpu_ms),
                                      "page_faults_per_step": statistics.median(t.faults),
                                      "bandwidth_limit_ms": limit_ms, "fraction_of_limit": limit_ms / ms,
                                      "cache_bandwidth_limit_ms": cache_limit_ms,
                                      "fraction_of_cache_limit": cache_limit_ms / ms}
            for name, r in row["impls"].items():
                base = row["impls"].get("naive " + name.split()[1])
                print(f"  {model_name:8s} batch {batch:5d} {name:9s} {r['ms_per_step']:9.1f} ms/step "
                      f"(cpu {r['cpu_ms_per_step']:7.1f} ms) {r['samples_per_s']:9.0f} samples/s"
                      + (f"  {base['ms_per_step'] / r['ms_per_step']:6.1f}x naive" if base else "")
                      + (f"  {r['fraction_of_limit']:.2f} of the DRAM / {r['fraction_of_cache_limit']:.2f} of the "
                         f"cache bandwidth limit ({row['limit_applies']} applies)" if name.split()[0] in FUSED else ""),
                      flush=True)
            if 1 in threads and 2 in threads:
                for impl in FUSED:
                    row[f"{impl}_2_vs_1_threads"] = (row["impls"][f"{impl} 2"]["samples_per_s"]
                                                     / row["impls"][f"{impl} 1"]["samples_per_s"])
                    print(f"  {model_name:8s} batch {batch:5d} {impl} 2 threads / 1 thread: "
                          f"{row[f'{impl}_2_vs_1_threads']:.2f}x (load {load0:.1f})", flush=True)
            for t in threads:
                for impl in ("stack", "fused"):
                    row[f"{impl}_vs_cpu_{t}"] = (row["impls"][f"{impl} {t}"]["samples_per_s"]
                                                 / row["impls"][f"cpu {t}"]["samples_per_s"])
                    print(f"  {model_name:8s} batch {batch:5d} {impl} / cpu at {t} thread{'s' * (t > 1)}: "
                          f"{row[f'{impl}_vs_cpu_{t}']:.2f}x", flush=True)
            results.append(row)
            if batch in (100, 1024):
                for impl in ("cpu", "stack"):
                    for t in threads:
                        b = breakdown(trainers[f"{impl} {t}"])
                        breakdowns.append({"model": model_name, "batch": batch, "impl": impl, "threads": t, "ms": b,
                                           "loadavg_1m": os.getloadavg()[0]})
                for t in threads:
                    trainers[f"fused {t}"].set_threads()
                    fused_breakdowns.append({"model": model_name, "batch": batch, "threads": t,
                                             "ms": fused_breakdown(trainers[f"fused {t}"]),
                                             "loadavg_1m": os.getloadavg()[0]})
            del trainers
    info["loadavg_after"] = os.getloadavg()

    print(f"\n{'model':8s} {'batch':>5s} {'impl':6s} {'threads':>7s} {'ms/step':>9s} {'cpu ms':>8s} {'samples/s':>10s} "
          f"{'vs naive':>8s} {'MB moved':>8s} {'of DRAM':>8s} {'of cache':>8s} {'applies':>7s}")
    for row in results:
        for name, r in row["impls"].items():
            impl, t = name.split()
            base = row["impls"].get("naive " + t)
            print(f"{row['model']:8s} {row['batch']:5d} {impl:6s} {t:>7s} {r['ms_per_step']:9.1f} {r['cpu_ms_per_step']:8.1f} "
                  f"{r['samples_per_s']:10.0f} " + (f"{base['ms_per_step'] / r['ms_per_step']:7.1f}x " if base else
                                                     f"{'':8s} ")
                  + (f"{row['bytes_per_step']['total'] / 1e6:8.0f} {r['fraction_of_limit']:8.2f} "
                     f"{r['fraction_of_cache_limit']:8.2f} {row['limit_applies']:>7s}" if impl in FUSED else ""))
        for impl in FUSED:
            if f"{impl}_2_vs_1_threads" in row:
                print(f"{row['model']:8s} {row['batch']:5d} {impl} 2 threads / 1 thread (samples/s): "
                      f"{row[f'{impl}_2_vs_1_threads']:.2f}x")
        for impl in ("stack", "fused"):
            print(f"{row['model']:8s} {row['batch']:5d} {impl} / cpu (samples/s): "
                  + ", ".join(f"{row[f'{impl}_vs_cpu_{t}']:.2f}x at {t} thread{'s' * (t > 1)}" for t in threads))
    print("\nbreakdown of the cpu step (ms/step, torch profiler; 'other' = GroupSum, loss, copies, glue):")
    labels = [label for label, _ in CATEGORIES] + ["other (GroupSum, loss, glue)", "step (profiled)"]
    print(f"{'model':8s} {'batch':>5s} {'impl':5s} {'thr':>3s} " + " ".join(f"{l.split(' (')[0][:14]:>14s}" for l in labels))
    for b in breakdowns:
        print(f"{b['model']:8s} {b['batch']:5d} {b['impl']:5s} {b['threads']:3d} "
              + " ".join(f"{b['ms'][l]:14.2f}" for l in labels))
    print("\nbreakdown of the fused step (ms/step, the extension's clock; 'rest' = checks, allocation, Python):")
    labels = list(FUSED_PHASES) + ["rest", "step (timed)"]
    print(f"{'model':8s} {'batch':>5s} {'thr':>3s} " + " ".join(f"{l[:12]:>12s}" for l in labels))
    for b in fused_breakdowns:
        print(f"{b['model']:8s} {b['batch']:5d} {b['threads']:3d} " + " ".join(f"{b['ms'][l]:12.2f}" for l in labels))
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "command": " ".join(["python"] + sys.argv), "steps": args.steps,
                               "warmup": args.warmup, "bandwidth_measured_bytes_per_s": measured,
                               "cache_bandwidth_measured_bytes_per_s": cached,
                               "bandwidth_used_bytes_per_s": bandwidth, "results": results,
                               "breakdown": breakdowns, "fused_breakdown": fused_breakdowns}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
