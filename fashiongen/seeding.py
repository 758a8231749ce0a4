"""Seeding every random number generator a run touches."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU) from one number."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
