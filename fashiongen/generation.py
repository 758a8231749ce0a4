"""``fashiongen generate`` and ``interpolate``: the conditions a user asks for, turned into generator input.

The one owner of what ``--label``, ``--like`` and ``--to`` mean for each kind of
generator (its condition's traits: :data:`fashiongen.config.CONDITIONS`):

- generators without a condition to give (``none``; ``cluster``, which draws its
  own) take noise only, and refuse both options;
- class-code generators (``label``) take ``--label`` (an index or a class name
  such as ``sneaker``); without it the samples cycle through the classes, one
  per row of a grid;
- encoding generators take ``--like IMAGE``: the image is converted like the
  training data, encoded by the generator's own encoder, and every sample is a
  variation of it.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np
import torch

from fashiongen.config import condition_traits
from fashiongen.data.image_files import DEFAULT_BACKGROUND, load_image, match_background
from fashiongen.encoding import encode_images, load_encoder
from fashiongen.errors import ConfigError, FashionGenError
from fashiongen.gan.artifact import LoadedGenerator


def _normalise(name: str) -> str:
    """Case, width, spaces and punctuation removed (NFKC, casefolded, letters and digits only)."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", name).casefold() if ch.isalnum())


def _is_integer(text: str) -> bool:
    return bool(re.fullmatch(r"\s*-?\d+\s*", text))


def resolve_label(text: str, classes: list[str]) -> int:
    """A class index from ``--label``, by these rules, first match wins:

    1. the exact name of a class (Unicode NFC on both sides, so a name typed
       on one OS matches a folder named on another): ``--label 10`` with class
       folders ``1, 2, 10`` is the class ``10``, whatever its index;
    2. an integer is a class index (0-based) — unless some class names are
       integers, when an integer that names no class is refused as ambiguous;
    3. a forgiving name: case, spaces and punctuation ignored, then a unique prefix.

    Raises :class:`ConfigError` listing the classes when nothing or more than one class matches.
    """
    choices = ", ".join(f"{i}={name}" for i, name in enumerate(classes))
    exact = [i for i, name in enumerate(classes) if unicodedata.normalize("NFC", name) == unicodedata.normalize("NFC", text)]
    if exact:
        return exact[0]
    if _is_integer(text):
        if any(_is_integer(name) for name in classes):
            raise ConfigError(
                f"--label {text.strip()} names no class, and this generator's class names are numbers, so an "
                f"index would be ambiguous; give a class name: one of {choices}."
            )
        index = int(text)
        if not 0 <= index < len(classes):
            raise ConfigError(f"--label {index} is out of range; this generator knows classes 0..{len(classes) - 1}.")
        return index
    wanted = _normalise(text)
    names = [_normalise(name) for name in classes]
    matches = [i for i, name in enumerate(names) if name == wanted] or [
        i for i, name in enumerate(names) if wanted and name.startswith(wanted)
    ]
    if len(matches) != 1:
        raise ConfigError(f"--label {text!r} names no single class; choose one of {choices}.")
    return matches[0]


def generation_conditions(
    loaded: LoadedGenerator, n: int, label: str | None, like: Path | None, encoder_path: Path, device
) -> torch.Tensor:
    """The condition of each of ``n`` samples, from ``--label``/``--like``: int64 (n,) class indices, float32
    n × dim encodings, or n × 0 for a generator that takes none.

    Raises :class:`ConfigError` for an option this generator cannot take, or an encoding generator without
    ``--like``; :func:`resolve_label`'s errors for a ``--label`` that names no class.
    """
    condition = loaded.spec.condition
    traits = condition_traits(condition)
    if label is not None and not (traits.asked_for and traits.class_code):
        _refuse("--label", "label", condition)
    if like is not None and not traits.encoder:
        _refuse("--like", "encoding", condition)
    if not traits.asked_for:
        return torch.empty(n, 0)
    if traits.encoder:
        if like is None:
            raise ConfigError("this generator varies a real image (model.condition: encoding); pass --like IMAGE.")
        return encode_user_image(loaded, like, encoder_path, device).expand(n, -1)
    if label is None:
        return torch.arange(n) % loaded.spec.num_classes  # cycle through the classes, one per grid row
    return torch.full((n,), resolve_label(label, loaded.classes), dtype=torch.long)


def walk_end(condition: str, to: str, start_given: bool) -> tuple[str | None, Path | None]:
    """``fashiongen interpolate --to``: the (``--label``, ``--like``) request of a walk's far end.

    Raises :class:`ConfigError` for a generator without a condition to give, or without a start (``start_given``).
    """
    traits = condition_traits(condition)
    if not traits.asked_for or not start_given:
        raise ConfigError(
            "--to needs a conditional generator and a start: --label A --to B (model.condition: label) "
            f"or --like a.jpg --to b.jpg (model.condition: encoding); this generator has {condition!r}."
        )
    return (None, Path(to)) if traits.encoder else (to, None)


def _refuse(option: str, kind: str, condition: str) -> None:
    raise ConfigError(f"{option} needs a generator trained with model.condition: {kind}; this one has {condition!r}.")


def encode_user_image(loaded: LoadedGenerator, image_path: Path, encoder_path: Path, device) -> torch.Tensor:
    """The encoding (1×dim) of a user's image, converted like the generator's training images."""
    encoder = load_encoder(encoder_path, device)
    if encoder.id != loaded.spec.encoder:
        raise FashionGenError(
            f"{encoder_path} is {encoder.id}, but the generator was trained on encodings of {loaded.spec.encoder}; "
            "pass --encoder with the encoder of the same experiment."
        )
    return encode_images(encoder, np.ascontiguousarray(user_image(loaded, image_path)[None]), device=device)


def user_image(loaded: LoadedGenerator, image_path: Path) -> np.ndarray:
    """A user's image as uint8 C×H×W, converted exactly like the generator's training images.

    Same decoding and pixel rules as ``preprocess`` (:mod:`fashiongen.data.image_files`),
    with the ``data.alpha_background`` the generator was trained with (white for
    generators saved before that param existed); for Fashion-MNIST a bright
    background is then inverted to its dark one.
    """
    data = loaded.params.get("data", {})
    background = data.get("alpha_background") or DEFAULT_BACKGROUND
    image = load_image(image_path, loaded.spec.image_size, loaded.spec.channels, background)
    return match_background(image, dark_background=data.get("source", "fashion-mnist") == "fashion-mnist")


# Bytes a `generate` request holds at its peak, per value: the noise (Philox words, uniforms, their
# normal quantiles: 3 × 8 bytes, then float32), the uint8 images twice (batches + their concatenation),
# and for a grid torchvision's float32 RGB copies (the images, the grid, the scaled grid) and the uint8 grid.
_NOISE_BYTES, _IMAGE_BYTES, _GRID_TILE_BYTES, _GRID_PIXEL_BYTES = 28, 2, 3 * 4, 3 * 4 * 2 + 3


def generate_memory_bytes(n: int, z_dim: int, channels: int, size: int, grid: tuple[int, int] | None) -> int:
    """About how many bytes ``fashiongen generate`` needs for ``n`` images (``grid``: the grid's px, or None for .npz)."""
    needed = n * z_dim * _NOISE_BYTES + n * channels * size * size * _IMAGE_BYTES
    if grid is not None:
        needed += n * 3 * size * size * _GRID_TILE_BYTES + grid[0] * grid[1] * _GRID_PIXEL_BYTES
    return needed


def available_memory_bytes() -> int | None:
    """The memory the kernel says is available to a new allocation (Linux ``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(needed: int, what: str, fix: str) -> None:
    """Refuse, before any work, a request that needs more memory than is available.

    Raises:
        FashionGenError: ``what`` needs about ``needed`` bytes, more than available; ``fix`` says what to change.
    """
    available = available_memory_bytes()
    if available is not None and needed > available:
        raise FashionGenError(
            f"{what} needs about {needed / 2**30:.1f} GiB of memory, more than the {available / 2**30:.1f} GiB "
            f"available: {fix}."
        )
