"""Pixel conventions and image grids.

Stored images are uint8 in [0, 255]; networks see float in [-1, 1]. Generated
images are quantised back to uint8 before they are scored or saved, so fakes
and reals reach the evaluator through exactly the same conversion.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from fashiongen.atomic import atomic_write


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounded to the nearest level."""
    return images.float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


def save_grid(path: Path | str, images: torch.Tensor, nrow: int | None = None) -> None:
    """Write uint8 images (N×C×H×W) as one image grid (format from the suffix), atomically."""
    from torchvision.utils import make_grid, save_image

    path = Path(path)
    nrow = nrow or max(1, math.isqrt(len(images)))
    grid = make_grid(images.detach().cpu().float().div(255.0), nrow=nrow, padding=2, pad_value=1.0)
    with atomic_write(path) as handle:
        save_image(grid, handle, format=_FORMATS.get(path.suffix.lower(), "png"))
