"""Scaling out on PyTorch's own engine: DistributedDataParallel under ``torchrun``.

``torchrun --nproc-per-node N -m compressor distill ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set. :func:`process_group` joins the process group (gloo on CPU,
nccl on CUDA); the loop then wraps the model in DDP and splits each epoch with a
DistributedSampler. ``--batch-size`` is per process. Only rank 0 writes files and prints.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from torch import distributed as dist
from torch import nn


def env_world_size() -> int:
    """The number of processes torchrun started (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Processes in the group (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0)."""
    if is_distributed():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def local_device(kind: str) -> torch.device:
    """``cuda:LOCAL_RANK`` for CUDA under torchrun, else the plain device."""
    if kind == "cuda" and env_world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(kind)


@contextlib.contextmanager
def process_group(device_kind: str = "cpu") -> Iterator[bool]:
    """Join the torchrun process group for the block when launched by torchrun.

    Yields whether the block runs distributed. A group created here is destroyed on exit.
    """
    if env_world_size() <= 1 or dist.is_initialized():
        yield is_distributed()
        return
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if device_kind == "cuda":
        torch.cuda.set_device(local_device("cuda"))
    dist.init_process_group(backend=backend)
    try:
        yield True
    finally:
        dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The model wrapped in DDP when distributed, else the model itself."""
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def sampler(dataset, seed: int):
    """A shuffling DistributedSampler for this rank, or None when not distributed."""
    if not is_distributed():
        return None
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=True, seed=seed)


def all_sum(values: list[float]) -> list[float]:
    """Sum ``values`` over all processes (identity when not distributed)."""
    if not is_distributed():
        return values
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()
