"""Training on several processes with torch.distributed: GPUs of one node, several nodes, or CPU cores.

``torchrun --nproc_per_node=N stages/train.py`` starts N copies of the train
stage; torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``, and each copy
joins the process group (NCCL on GPUs, gloo on CPUs). Every rank draws the
same permutation of the training set and takes its own slice of every batch
(``train.batch_size`` is the global batch), with its own noise (seed + rank).
After each backward pass the gradients are averaged over the ranks, so every
rank applies the same update and the weights stay identical: the arithmetic of
DistributedDataParallel.

Why not the ``DistributedDataParallel`` wrapper itself: its reducer expects one
forward and one backward per module per iteration. A GAN step runs the
discriminator twice before its backward (real and fake batches, each with its
own BatchNorm statistics as in the DCGAN paper), differentiates through it
twice for WGAN-GP's penalty (``autograd.grad``, which DDP does not support),
and runs it frozen inside the generator's update. Averaging the flattened
gradients with one ``all_reduce`` per network per update is what DDP does
underneath, without those constraints. BatchNorm statistics stay per rank, as
with DDP without SyncBatchNorm; rank 0's are the ones saved.

Only rank 0 writes: dvclive logs, sample grids, checkpoints and the generator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from fashiongen.device import resolve_device
from fashiongen.errors import ConfigError

RANK_SEED_STRIDE = 1_000_003  # a prime: per-rank noise seeds never collide with a neighbour's train.seed


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def seed(self, seed: int) -> int:
        """The seed of this rank's own random stream (noise, augmentation)."""
        return (seed + RANK_SEED_STRIDE * self.rank) % 2**63

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global batch's indices."""
        return index[self.rank :: self.world_size] if self.enabled else index


def ranks_from_environment() -> Ranks:
    """What torchrun set (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``); one process when unset."""
    try:
        return Ranks(
            rank=int(os.environ.get("RANK", 0)),
            world_size=int(os.environ.get("WORLD_SIZE", 1)),
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        )
    except ValueError as exc:
        raise ConfigError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers ({exc}); start with torchrun.") from None


def start(requested_device: str, batch_size: int) -> tuple[Ranks, torch.device]:
    """Join the process group when started by torchrun; returns this rank and its device."""
    ranks = ranks_from_environment()
    device = resolve_device(requested_device)
    if not ranks.enabled:
        return ranks, device
    if batch_size % ranks.world_size:
        raise ConfigError(
            f"train.batch_size={batch_size} is the global batch and must divide evenly over the "
            f"{ranks.world_size} processes; use a multiple of {ranks.world_size}."
        )
    if device.type == "cuda":
        torch.cuda.set_device(ranks.local_rank)
        device = torch.device("cuda", ranks.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ranks, device


def stop(ranks: Ranks) -> None:
    if ranks.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ranks: Ranks) -> None:
    if ranks.enabled:
        dist.barrier()


def average_gradients(module: nn.Module) -> None:
    """Replace every gradient of ``module`` by its mean over the ranks (one all_reduce)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch._utils._flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for grad, synced in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
        grad.copy_(synced)


def average_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over the ranks, in place (statistics every rank then logs alike)."""
    dist.all_reduce(tensor)
    return tensor.div_(dist.get_world_size())


def broadcast_module(module: nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (after a resume, before the first step)."""
    for tensor in module.state_dict().values():
        dist.broadcast(tensor, src=0)


def check_same_everywhere(ranks: Ranks, value, what: str, fix: str) -> None:
    """Stop every rank with one clear error unless all of them hold the same ``value``.

    Also a barrier: no rank goes on (rank 0 clearing old checkpoints, say)
    before every rank has got here.
    """
    if not ranks.enabled:
        return
    values = [None] * ranks.world_size
    dist.all_gather_object(values, value)
    if len(set(values)) > 1:
        raise ConfigError(f"the training processes disagree on {what} ({values}, by rank); {fix}.")
