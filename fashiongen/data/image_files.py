"""Reading image files (a user's photo, a folder dataset) into the pipeline's uint8 layout.

Every image goes through the same conversion, whether ``preprocess`` reads it
from a folder or ``fashiongen generate --like`` from the command line:

1. open with Pillow and read the header only; an image above
   :data:`MAX_PIXELS` is refused before a pixel is decoded (Pillow itself only
   warns below twice its own limit);
2. a JPEG whose shorter side is at least 4× the training size is decoded at a
   reduced scale (libjpeg's DCT scaling through Pillow's ``draft``, 1/2, 1/4 or
   1/8) that keeps both sides at least 2× the training size, so the Lanczos
   resize below still has 2 source pixels per output pixel; smaller JPEGs and
   every other format decode at full size, so their output is unchanged;
3. apply the EXIF orientation;
4. convert the pixel values to 8 bits by :func:`to_training_mode` (the rules,
   mode by mode, are in its docstring): high-bit-depth images are *scaled*,
   never clipped, and any alpha channel or transparency entry is composited over
   one fixed background colour (``data.alpha_background``);
5. center-crop to a square and resize with Lanczos to the training size.

The result is a uint8 array C×H×W, exactly what ``data/prepared`` holds, so a
user's photo reaches a network the way the training images did.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

from fashiongen.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
MAX_PIXELS = 200_000_000  # refuse decompression bombs rather than exhaust memory
DEFAULT_BACKGROUND = (255, 255, 255)  # white: what product photos and cut-outs are shown on
DRAFT_FACTOR = 2  # a drafted JPEG keeps at least this many source pixels per output pixel on each side

# Pillow's modes that carry an alpha channel (premultiplied ones included); P/L/RGB may carry a
# transparency entry (PNG tRNS, GIF) in ``image.info`` instead
ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
UINT16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
UINT16_MAX = 65535


class UnreadableImage(DataError):
    """A file that does not decode to an image; ``reason`` says why without naming the file."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name} {reason}")
        self.reason = reason


def load_image(
    path: Path | str, size: int, channels: int, background: Sequence[int] = DEFAULT_BACKGROUND,
) -> np.ndarray:
    """``path`` as uint8 C×size×size; a :class:`DataError` naming the file when it is not a readable image."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist.")
    try:
        with open(path, "rb") as handle:
            return decode_image(handle, size, channels, name=str(path), background=background)
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror or type(exc).__name__}).") from None


@dataclass(frozen=True)
class DecodedImage:
    """An image in the training layout (``pixels``: uint8 C×size×size) and what the file held (Pillow mode, W×H)."""

    pixels: np.ndarray
    mode: str
    width: int
    height: int


def decode_image(
    source: Path | BinaryIO, size: int, channels: int, name: str, background: Sequence[int] = DEFAULT_BACKGROUND,
) -> np.ndarray:
    """A file or file object as uint8 C×size×size (values 0..255); see :func:`read_image`."""
    return read_image(source, size, channels, name, background).pixels


def read_image(
    source: Path | BinaryIO, size: int, channels: int, name: str, background: Sequence[int] = DEFAULT_BACKGROUND,
) -> DecodedImage:
    """Decode ``source`` by the steps of this module's docstring.

    Raises :class:`UnreadableImage` (a :class:`DataError`) naming ``name``, with a
    reason free of paths and object addresses, when it does not decode or is
    larger than :data:`MAX_PIXELS`.
    """
    from PIL import Image, ImageOps

    with open_image(source, name) as image:
        mode, (width, height) = image.mode, image.size
        if image.format == "JPEG" and min(image.size) >= 2 * DRAFT_FACTOR * size:
            image.draft(image.mode, (DRAFT_FACTOR * size, DRAFT_FACTOR * size))
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
            converted = to_training_mode(upright, channels, background)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
            raise UnreadableImage(name, unreadable_reason(exc)) from None
    square = ImageOps.fit(converted, (size, size), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    array = np.asarray(square, dtype=np.uint8)
    pixels = array[None] if channels == 1 else np.ascontiguousarray(array.transpose(2, 0, 1))
    return DecodedImage(pixels, mode, width, height)


def open_image(source: Path | BinaryIO, name: str):
    """The opened (not yet decoded) Pillow image; :class:`UnreadableImage` when it is not one or too large."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, by the header
            image = Image.open(source)
    except FileNotFoundError:
        raise DataError(f"{name} does not exist.") from None
    except Image.DecompressionBombError:
        raise UnreadableImage(name, oversized_reason(None)) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UnreadableImage(name, unreadable_reason(exc)) from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise UnreadableImage(name, oversized_reason((width, height)))
    return image


def oversized_reason(size: tuple[int, int] | None) -> str:
    what = f"is {size[0]}×{size[1]} px ({size[0] * size[1] / 1e6:.0f} Mpx)" if size else "is too large"
    return f"{what}, above the {MAX_PIXELS // 1_000_000} Mpx limit (not decoded); downscale it"


def unreadable_reason(exc: BaseException) -> str:
    """Why a file is not a readable image, the same text wherever the file is and whichever process read it."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        detail = "not a format Pillow recognises"
    else:
        detail = re.sub(r"<[^<>]*>|\s+at 0x[0-9a-fA-F]+|'/[^']*'", "", str(exc)).strip()[:120]
    return f"is not a readable image ({type(exc).__name__}: {detail}); use a PNG, JPEG or WebP file."


def to_training_mode(image, channels: int, background: Sequence[int] = DEFAULT_BACKGROUND):
    """Any Pillow image as 8-bit ``L`` (channels 1) or ``RGB`` (channels 3), values scaled, alpha flattened.

    The rules, mode by mode:

    - ``1``: 0 → 0, 1 → 255. ``L``/``RGB``: unchanged. ``P``: its palette colours.
      ``CMYK``, ``YCbCr`` and other colour modes: Pillow's conversion to RGB.
    - ``I;16``/``I;16B``/``I;16L`` (16-bit unsigned: 16-bit PNG, TIFF, PGM):
      ``round(v / 257)``, so 0 → 0 and 65535 → 255.
    - ``I`` (32-bit signed): values within 0..65535 are 16-bit data that Pillow
      widened, scaled like ``I;16``; otherwise min..max of the image → 0..255
      (a constant image outside 0..65535 → 0).
    - ``F`` (32-bit float): values within 0..1 → ``round(v × 255)``; otherwise
      min..max of the image → 0..255. NaN → 0; a constant image outside 0..1 → 0.
    - Alpha (``LA``, ``PA``, ``RGBA``, premultiplied ``La``/``RGBa``) and a
      transparency entry (``P``, ``L``, ``RGB`` with PNG tRNS or a GIF's
      transparent index): composited over ``background`` (an RGB triple,
      ``data.alpha_background``) by Pillow's ``alpha_composite``.
    - Grey output from colour is Pillow's ITU-R 601-2 luma of the RGB values.
    """
    from PIL import Image

    if image.mode in UINT16_MODES or image.mode in ("I", "F"):
        image = Image.fromarray(scale_to_uint8(np.asarray(image), image.mode), "L")
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, (*(int(v) for v in background), 255))
        image = Image.alpha_composite(backdrop, rgba)
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    return image.convert("L" if channels == 1 else "RGB")


def scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """A high-bit-depth image's values (H×W, ``I;16*``/``I``/``F``) as uint8 by the rules of :func:`to_training_mode`."""
    values = values.astype(np.float64)
    if mode == "F":
        finite = values[np.isfinite(values)]
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        if 0.0 <= low and high <= 1.0:
            scaled = values * 255.0
        else:
            scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        return np.round(np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)).clip(0, 255).astype(np.uint8)
    low, high = (values.min(), values.max()) if values.size else (0, 0)
    if mode in UINT16_MODES or (low >= 0 and high <= UINT16_MAX):
        return np.round(values / 257.0).astype(np.uint8)
    if high == low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)


def match_background(image: np.ndarray, dark_background: bool) -> np.ndarray:
    """Invert ``image`` when its border is bright but the training images have a dark background.

    Fashion-MNIST shows light garments on black; a product photo is usually a
    dark garment on white. The border (outer 2 pixels) decides which it is.
    """
    border = np.concatenate([image[:, :2].ravel(), image[:, -2:].ravel(), image[:, :, :2].ravel(), image[:, :, -2:].ravel()])
    if dark_background and border.mean() > 127:
        return 255 - image
    return image
