"""Distributed data parallel for the one training loop: process group, wrapping, small collectives.

The loop in :mod:`xrutils.train` runs unchanged in one process or under
``torchrun --nproc_per_node=N python -m xrutils train ...`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``). With more than one process every trainable network of the
model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` *in place* (``setattr`` on the model), so a
family's ``training_step`` that calls ``self.generator(z)`` goes through DDP without knowing about it. Backends:
NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank, the number of processes, and whether it created the group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when setup() initialised the process group (cleanup() then destroys it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_type: str) -> DistInfo:
    """Join the process group described by the environment (torchrun), or an existing one; else a single process."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={world_size} but this torch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    # rank 0 alone writes grids and checkpoints and, with train.keep_weights="sampled", draws each checkpoint's
    # evaluation samples (minutes for a 1000-step DDPM) while the others wait at a barrier: wait long enough
    dist.init_process_group(
        backend="nccl" if device_type == "cuda" else "gloo", timeout=datetime.timedelta(hours=2)
    )
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=True)


def cleanup(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def sync_batchnorm(net: nn.Module) -> nn.Module:
    """``net`` with every BatchNorm layer a SyncBatchNorm (the same parameters and buffers, shared, so optimisers and
    state_dict keys are unchanged): under DDP each layer then normalises by the statistics of the whole global batch,
    as one process would, instead of those of the batch_size / N images on its GPU. SyncBatchNorm runs on GPUs only."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(net)


def wrap_networks(
    model: nn.Module, networks: dict[str, nn.Module], device: torch.device
) -> dict[str, nn.Module]:
    """Replace each network attribute of ``model`` by its DDP wrapper (parameters are broadcast from rank 0); on
    GPUs its BatchNorm layers become SyncBatchNorm first. Returns the unwrapped networks (what checkpoints save)."""
    plain: dict[str, nn.Module] = {}
    for name, net in networks.items():
        if getattr(model, name, None) is not net:
            raise ValueError(
                f"{type(model).__name__}.networks() names {name!r}, but model.{name} is not that "
                f"network; networks() must return the model's attribute names"
            )
        device_ids = [device.index] if device.type == "cuda" else None
        if device.type == "cuda":
            net = sync_batchnorm(net)
        plain[name] = net
        setattr(model, name, DistributedDataParallel(net, device_ids=device_ids))
    return plain


@contextlib.contextmanager
def unwrapped(model: nn.Module, networks: dict[str, nn.Module]) -> Iterator[nn.Module]:
    """Temporarily put the raw networks back, so one rank can sample without DDP's collective calls."""
    wrapped = {name: getattr(model, name) for name in networks}
    try:
        for name, net in networks.items():
            setattr(model, name, net)
        yield model
    finally:
        for name, wrapper in wrapped.items():
            setattr(model, name, wrapper)


def mean_over_ranks(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average a dict of floats over all processes (identity in one process). Every rank must call it."""
    if not info.enabled or not values:
        return values
    keys = list(values)  # every rank builds the dict in the same order (the family's loss keys)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True when ``flag`` is true on any process (so every rank stops together). Every rank must call it."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def _collective_device() -> torch.device:
    # NCCL only moves CUDA tensors; gloo only CPU ones.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
