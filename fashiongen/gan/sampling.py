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


@torch.inference_mode()
def generate_uint8(
    generator: nn.Module, z: torch.Tensor, batch_size: int, device: torch.device | str, cond: torch.Tensor,
) -> torch.Tensor:
    """``G(z, c)`` as uint8 N×C×H×W on the CPU, in eval mode, ``batch_size`` rows at a time.

    ``z`` is N×z_dim noise, ``cond`` the N conditions (N×0 for an unconditional
    generator: :mod:`fashiongen.gan.conditions`).
    """
    was_training = generator.training
    generator.eval()
    try:
        chunks = []
        for i in range(0, len(z), batch_size):
            rows = slice(i, i + batch_size)
            chunks.append(to_uint8(generator(z[rows].to(device), cond[rows].to(device))).cpu())
    finally:
        generator.train(was_training)
    return torch.cat(chunks)


def sample_uint8(
    generator: nn.Module, n: int, z_dim: int, seed: int, batch_size: int = 1000, device: torch.device | str = "cpu",
    *, cond: torch.Tensor,
) -> torch.Tensor:
    """``n`` images from fresh seeded noise and the given ``n`` conditions."""
    return generate_uint8(generator, noise(n, z_dim, seed), batch_size, device, cond)
