"""The real images one evaluation compares with: which ones, and those standing in for a perfect generator.

:func:`draw_real` applies a real-set rule (:mod:`fashiongen.real_set`) to the
prepared data with a seeded generator and returns a :class:`RealDraw`: the R
reference images (held-out test images, or the whole dataset for a small
folder), their labels and conditions, and the floor's pairing. The images stay
in their files (a view read per batch, :mod:`fashiongen.data.batches`); the
draw holds indices. The evaluate stage scores against it and the look inside
the generator (:mod:`fashiongen.analysis.inspection`) reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from fashiongen.data.batches import Images, ImageSource, Joined, Subset
from fashiongen.data.prepared import PreparedData
from fashiongen.real_set import TEST, RealSet

SPLITS = ("train", "test")


def pick(n_total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct sorted indices out of ``n_total`` (all of them when ``n == n_total``)."""
    if n == n_total:
        return np.arange(n_total)
    return np.sort(rng.choice(n_total, size=n, replace=False))


@dataclass(frozen=True)
class RealDraw:
    """The real images of one evaluation (see :mod:`fashiongen.real_set`).

    ``images`` (R uint8 C×H×W rows, a view read per batch:
    :mod:`fashiongen.data.batches`), their ``labels`` (R) and ``conditions`` (R
    rows; R×0 for an unconditional generator) are the reference the samples are scored against. The floor pairs
    them with ``floor_images``, training images standing in for a perfect
    generator's samples (real set ``test``), or, when that is None, pairs the
    reference rows ``halves[0]`` with the rows ``halves[1]`` (``full``).
    """

    images: Images
    labels: np.ndarray
    conditions: torch.Tensor
    held_out: np.ndarray  # bool R: the reference rows from the test split (never trained on)
    floor_images: Images | None = None
    floor_index: np.ndarray | None = None  # the training indices of ``floor_images``
    halves: tuple[np.ndarray, np.ndarray] | None = None

    def floor_features(self, real_feats: torch.Tensor, extract: Callable) -> tuple[torch.Tensor, torch.Tensor]:
        """(real side, stand-in side) of the floor, given the reference's features and the feature extractor."""
        if self.floor_images is not None:
            return real_feats, extract(self.floor_images)[0]
        return real_feats[self.halves[0]], real_feats[self.halves[1]]


def draw_real(real_set: RealSet, data: PreparedData, conditions: dict[str, torch.Tensor], seed: int) -> RealDraw:
    """Pick the reference and floor images of ``real_set`` with a generator seeded by ``seed``.

    ``conditions``: one row per image of each split (:func:`split_conditions`).
    The images stay in their files: the draw holds their indices.
    """
    rng = np.random.default_rng(seed)
    splits = {name: data.split(name) for name in SPLITS}
    train, test = (ImageSource(splits[name].images) for name in SPLITS)  # read per batch, never preloaded
    labels = {name: np.asarray(splits[name].labels) for name in SPLITS}
    if real_set.name == TEST:
        index = pick(len(test), real_set.count, rng)
        cond = conditions["test"][torch.as_tensor(index)]
        floor_index = pick(len(train), real_set.floor_count, rng)
        return RealDraw(Subset(test, index), labels["test"][index], cond, np.ones(len(index), dtype=bool),
                        floor_images=Subset(train, floor_index), floor_index=floor_index)
    index = pick(len(train) + len(test), real_set.count, rng)
    from_train, from_test = index[index < len(train)], index[index >= len(train)] - len(train)
    cond = torch.cat([conditions["train"][torch.as_tensor(from_train)], conditions["test"][torch.as_tensor(from_test)]])
    order, half = rng.permutation(real_set.count), real_set.floor_count
    return RealDraw(
        Joined((Subset(train, from_train), Subset(test, from_test))),
        np.concatenate([labels["train"][from_train], labels["test"][from_test]]),
        cond, np.arange(real_set.count) >= len(from_train), halves=(np.sort(order[:half]), np.sort(order[half : 2 * half])),
    )
