"""Process-group set-up for ``torchrun --nproc_per_node=N -m lgc train ...``.

WORLD_SIZE/RANK/LOCAL_RANK from torchrun select DistributedDataParallel (nccl on GPU, gloo on CPU);
each process draws its shard of every batch (``batch_size`` is per process) and rank 0 evaluates
and writes the run directory."""
from __future__ import annotations

import dataclasses
import os


@dataclasses.dataclass
class Dist:
    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None) -> tuple[Dist, str]:
    """(process group position, torch device string); joins the group when WORLD_SIZE > 1."""
    import torch
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        import torch.distributed as td
        dist = Dist(int(os.environ["WORLD_SIZE"]), int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)))
        use_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
        if not td.is_initialized():
            td.init_process_group("nccl" if use_cuda else "gloo")
        if use_cuda:
            torch.cuda.set_device(dist.local_rank)
            return dist, f"cuda:{dist.local_rank}"
        return dist, "cpu"
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return Dist(), device


def shutdown(dist: Dist) -> None:
    if dist.world > 1:
        import torch.distributed as td
        td.destroy_process_group()
