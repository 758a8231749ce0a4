"""Schedules of the learning rates and penalty weights over a training run (``train.schedule``).

A schedule maps the run's progress ``p`` (D updates done ÷ D updates of the
whole run, in [0, 1]) and an end ratio ``r`` (the value at the last step ÷
the value at the first, in [0, 1]) to a multiplier of the initial value:

- ``constant``: 1 (``r`` ignored);
- ``linear``: ``1 - (1 - r)·p``;
- ``cosine``: ``r + (1 - r)·(1 + cos πp)/2``, the half-cosine decay of
  Loshchilov & Hutter (2017, SGDR, without restarts), which R3GAN (Huang et al.
  2024) uses for both its learning rate and its R1/R2 weight γ.

:class:`RunSchedule` is what a run schedules, in one place: from the real
images the discriminator has seen (R3GAN's loop derives its schedules from
``cur_nimg`` the same way), the progress, and from it the learning-rate and
R1/R2 multipliers of the next update. The horizon is the run's
``train.epochs``; a run extended with ``train.extend`` continues on the longer
run's schedule from where it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

Schedule = Callable[[float, float], float]


def constant(progress: float, end_ratio: float) -> float:
    return 1.0


def linear(progress: float, end_ratio: float) -> float:
    return 1.0 - (1.0 - end_ratio) * min(max(progress, 0.0), 1.0)


def cosine(progress: float, end_ratio: float) -> float:
    return end_ratio + (1.0 - end_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


SCHEDULES: dict[str, Schedule] = {"constant": constant, "linear": linear, "cosine": cosine}


def make_schedule(name: str) -> Schedule:
    """The schedule called ``name``; a ValueError listing the known ones otherwise."""
    try:
        return SCHEDULES[name]
    except KeyError:
        raise ValueError(f"unknown schedule {name!r}; choose one of {sorted(SCHEDULES)}") from None


@dataclass(frozen=True)
class Scheduled:
    """The scheduled values of one update."""

    progress: float  # share of the run's images seen, in [0, 1]
    lr_scale: float  # multiplier of the initial learning rates, in (0, 1]
    gamma_scale: float  # multiplier of the R1/R2 weights γ, in [0, 1]


@dataclass(frozen=True)
class RunSchedule:
    """What a run schedules from the images seen (see the module doc).

    ``total_images``: real images the discriminator sees over the whole run
    (``train.epochs`` × steps per epoch × ``train.batch_size``); 0 keeps the
    progress at 0 (no horizon). ``images_per_update``: real images of one D
    update, all processes together.
    """

    shape: Schedule = constant
    lr_end_ratio: float = 1.0
    gamma_end_ratio: float = 1.0
    total_images: int = 0
    images_per_update: int = 1

    def progress(self, images_seen: int) -> float:
        """Share of the run done after ``images_seen`` images, in [0, 1] (exact: a ratio of integers)."""
        return min(images_seen / self.total_images, 1.0) if self.total_images else 0.0

    def at(self, images_seen: int) -> Scheduled:
        """The multipliers of the update that follows ``images_seen`` images."""
        progress = self.progress(images_seen)
        return Scheduled(progress, self.shape(progress, self.lr_end_ratio), self.shape(progress, self.gamma_end_ratio))

    def for_updates(self, updates: int) -> Scheduled:
        """:meth:`at` after ``updates`` D updates."""
        return self.at(updates * self.images_per_update)
