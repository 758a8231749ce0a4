"""Differentiable augmentation (DiffAugment, Zhao et al., 2020) for small datasets.

The same kinds of random transformation are applied to real and generated
images before the discriminator sees them, in both players' updates, and
gradients flow through them to the generator. The discriminator then cannot
memorise a small training set, and the generator is not pushed to reproduce
the augmentations (they are applied to fakes as well). All randomness comes
from the trainer's generator, so runs stay reproducible and resumable.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.nn import functional as F

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _uniform(shape, rng: torch.Generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=rng, device=device)


def color(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Random brightness, saturation (colour images only) and contrast."""
    batch = len(x)
    x = x + (_uniform((batch, 1, 1, 1), rng, x.device) - 0.5)
    if x.shape[1] > 1:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (_uniform((batch, 1, 1, 1), rng, x.device) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform((batch, 1, 1, 1), rng, x.device) + 0.5) + mean


def translation(x: torch.Tensor, rng: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size, repeating the border pixels."""
    batch, _, height, width = x.shape
    limit = torch.tensor([int(width * ratio), int(height * ratio)], device=x.device)
    shift = torch.floor(_uniform((batch, 2), rng, x.device) * (2 * limit + 1)) - limit  # whole pixels
    theta = torch.zeros(batch, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * shift[:, 0] / width
    theta[:, 1, 2] = -2 * shift[:, 1] / height
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=False)


def cutout(x: torch.Tensor, rng: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Blank (set to 0) one random square of ``ratio`` × the image size per image."""
    batch, _, height, width = x.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    corner = _uniform((batch, 2), rng, x.device)
    top = (corner[:, 0] * (height - size_y + 1)).floor()
    left = (corner[:, 1] * (width - size_x + 1)).floor()
    rows = torch.arange(height, device=x.device)[None, :]
    cols = torch.arange(width, device=x.device)[None, :]
    inside_y = (rows >= top[:, None]) & (rows < top[:, None] + size_y)
    inside_x = (cols >= left[:, None]) & (cols < left[:, None] + size_x)
    keep = ~(inside_y[:, :, None] & inside_x[:, None, :])
    return x * keep[:, None, :, :].to(x.dtype)


AUGMENTS: dict[str, Augment] = {"color": color, "translation": translation, "cutout": cutout}


def make_augment(policies: Sequence[str]) -> Augment | None:
    """The composition of the named augmentations, or None for none."""
    if not policies:
        return None
    chosen = [AUGMENTS[name] for name in policies]

    def augment(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        for transform in chosen:
            x = transform(x, rng)
        return x

    return augment
