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
from fashiongen.errors import FashionGenError


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounded to the nearest level."""
    return images.float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
GRID_PADDING = 2  # px between and around the tiles of a grid
# The largest side, in px, each grid format is written with: WebP's header holds 14 bits (16383);
# libjpeg refuses more than JPEG_MAX_DIMENSION (65500); PNG's own limit is 2**31 - 1, but 65535
# is what image viewers and browsers commonly open (and such a grid already takes gigabytes).
MAX_GRID_SIDE = {"png": 65535, "jpeg": 65500, "webp": 16383}


def tiles_per_row(n: int, nrow: int | None = None) -> int:
    """Tiles in a grid row: ``nrow`` (default ⌊√n⌋, a square-ish grid), at most ``n`` (as torchvision's make_grid)."""
    return min(nrow or max(1, math.isqrt(n)), max(n, 1))


def grid_shape(n: int, height: int, width: int, nrow: int | None = None) -> tuple[int, int]:
    """(height, width) in px of :func:`save_grid`'s grid of ``n`` >= 1 tiles of height×width px, ``nrow`` per row.

    Tiles per row: :func:`tiles_per_row`; one tile is saved as it is, without padding (as make_grid does).
    """
    if n == 1:
        return height, width
    per_row = tiles_per_row(n, nrow)
    rows = -(-n // per_row)
    return rows * (height + GRID_PADDING) + GRID_PADDING, per_row * (width + GRID_PADDING) + GRID_PADDING


GRID_FIX = "draw fewer images (--n), change --nrow, or write raw images to an .npz file"


def check_grid_size(path: Path | str, n: int, height: int, width: int, nrow: int | None = None,
                    fix: str = GRID_FIX) -> tuple[int, int]:
    """The grid's (height, width) in px, after checking that its format (from ``path``'s suffix) can hold it.

    ``fix`` is the advice the error gives (the command's own options).

    Raises:
        FashionGenError: a side exceeds :data:`MAX_GRID_SIDE` for the format; the message gives the size and what to change.
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower(), "png")
    grid_height, grid_width = grid_shape(n, height, width, nrow)
    limit = MAX_GRID_SIDE[fmt]
    if max(grid_height, grid_width) > limit:
        per_row = tiles_per_row(n, nrow)
        raise FashionGenError(
            f"{path}: a grid of {n} images of {width}×{height} px, {per_row} per row, is {grid_width}×{grid_height} px; "
            f"{fmt.upper()} holds at most {limit} px per side: {fix}."
        )
    return grid_height, grid_width


def save_grid(path: Path | str, images: torch.Tensor, nrow: int | None = None) -> None:
    """Write uint8 images (N×C×H×W) as one image grid (format from the suffix), atomically.

    Raises:
        FashionGenError: the grid is larger than its format allows (:func:`check_grid_size`).
    """
    from torchvision.utils import make_grid, save_image

    path = Path(path)
    check_grid_size(path, len(images), images.shape[-2], images.shape[-1], nrow)
    per_row = tiles_per_row(len(images), nrow)
    grid = make_grid(images.detach().cpu().float().div(255.0), nrow=per_row, padding=GRID_PADDING, pad_value=1.0)
    with atomic_write(path) as handle:
        save_image(grid, handle, format=_FORMATS.get(path.suffix.lower(), "png"))
