"""Reading image files (a user's photo, a folder dataset) into the pipeline's uint8 layout.

Every image goes through the same conversion: decode with Pillow, apply the
EXIF orientation, convert to grey (``L``) or ``RGB``, center-crop to a square
and resize with an antialiasing filter to the training size. The result is a
uint8 array C×H×W, exactly what ``data/prepared`` holds, so a user's photo
reaches a network the way the training images did.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

from fashiongen.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
MAX_PIXELS = 200_000_000  # refuse decompression bombs rather than exhaust memory


def load_image(path: Path | str, size: int, channels: int) -> np.ndarray:
    """``path`` as uint8 C×size×size; a :class:`DataError` naming the file when it is not a readable image."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist.")
    return decode_image(path, size, channels, name=str(path))


def decode_image(source: Path | BinaryIO, size: int, channels: int, name: str) -> np.ndarray:
    """A file or file object as uint8 C×size×size; a :class:`DataError` naming ``name`` when it does not decode."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = name
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(source) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            converted = image.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError:
        raise DataError(f"{path} does not exist.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(
            f"{path} is not a readable image ({type(exc).__name__}: {str(exc)[:120]}); "
            f"use a PNG, JPEG or WebP file."
        ) from None
    square = ImageOps.fit(converted, (size, size), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    array = np.asarray(square, dtype=np.uint8)
    return array[None] if channels == 1 else np.ascontiguousarray(array.transpose(2, 0, 1))


def match_background(image: np.ndarray, dark_background: bool) -> np.ndarray:
    """Invert ``image`` when its border is bright but the training images have a dark background.

    Fashion-MNIST shows light garments on black; a product photo is usually a
    dark garment on white. The border (outer 2 pixels) decides which it is.
    """
    border = np.concatenate([image[:, :2].ravel(), image[:, -2:].ravel(), image[:, :, :2].ravel(), image[:, :, -2:].ravel()])
    if dark_background and border.mean() > 127:
        return 255 - image
    return image
