"""Drawing images from a generator: seeded, batched, under inference mode.

The noise is drawn on the CPU from a private generator seeded with ``seed`` and
then moved to the device, so the same seed gives the same noise on any machine
and never disturbs the global RNG of a training run.
"""

from __future__ import annotations

import torch
from torch import nn

from fashiongen.images import to_uint8


def noise(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """``n`` standard-normal noise vectors, reproducible from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, z_dim, generator=generator)


def forward(generator: nn.Module, z: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
    """``G(z)`` for an unconditional generator, ``G(z, c)`` for a conditional one."""
    return generator(z) if cond is None else generator(z, cond)


@torch.inference_mode()
def generate_uint8(
    generator: nn.Module, z: torch.Tensor, batch_size: int, device: torch.device | str = "cpu",
    cond: torch.Tensor | None = None,
) -> torch.Tensor:
    """Images for the noise ``z`` (and conditions ``cond``, one per row), uint8 N×C×H×W on the CPU, in eval mode."""
    was_training = generator.training
    generator.eval()
    try:
        chunks = []
        for i in range(0, len(z), batch_size):
            c = cond[i : i + batch_size].to(device) if cond is not None else None
            chunks.append(to_uint8(forward(generator, z[i : i + batch_size].to(device), c)).cpu())
    finally:
        generator.train(was_training)
    return torch.cat(chunks)


def sample_uint8(
    generator: nn.Module, n: int, z_dim: int, seed: int, batch_size: int = 1000, device: torch.device | str = "cpu",
    cond: torch.Tensor | None = None,
) -> torch.Tensor:
    """``n`` images from fresh seeded noise (and the given conditions)."""
    return generate_uint8(generator, noise(n, z_dim, seed), batch_size, device, cond)
