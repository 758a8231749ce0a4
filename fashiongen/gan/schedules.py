"""Schedules of the learning rates and penalty weights over a training run (``train.schedule``).

A schedule maps the run's progress ``p`` (D updates done ÷ D updates of the
whole run, in [0, 1]) and an end ratio ``r`` (the value at the last step ÷
the value at the first, in [0, 1]) to a multiplier of the initial value:

- ``constant``: 1 (``r`` ignored);
- ``linear``: ``1 - (1 - r)·p``;
- ``cosine``: ``r + (1 - r)·(1 + cos πp)/2``, the half-cosine decay of
  Loshchilov & Hutter (2017, SGDR, without restarts), which R3GAN (Huang et al.
  2024) uses for both its learning rate and its R1/R2 weight γ.

The horizon is the run's ``train.epochs``; a run extended with
``train.extend`` continues on the longer run's schedule from where it is.
"""

from __future__ import annotations

import math
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
