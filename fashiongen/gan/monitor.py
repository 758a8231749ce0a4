"""Quick FID during training, to watch progress and pick the best checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fashiongen.gan.conditions import Conditions
from fashiongen.gan.sampling import generate_uint8, noise
from fashiongen.metrics.features import extract, load_evaluator
from fashiongen.metrics.scores import frechet_distance


class FidMonitor:
    """FID of fixed noise (and fixed conditions) against fixed real images, in the evaluator's features.

    The real images are drawn from the *training* split: the best checkpoint is
    chosen by this FID, so it must not see the test images that the evaluate
    stage scores it on. A conditional generator is given the conditions of
    those same real images.
    """

    def __init__(self, evaluator_path: Path, real_images: np.ndarray, conditions: Conditions, n: int, seed: int,
                 z_dim: int, device):
        self.evaluator = load_evaluator(evaluator_path, device)
        choice = np.sort(np.random.default_rng(seed).choice(len(real_images), size=min(n, len(real_images)), replace=False))
        self.real_features, _ = extract(self.evaluator.model, real_images[choice], 1000, device)
        self.z = noise(len(choice), z_dim, seed + 1)
        self.cond = conditions.of(choice)
        self.device = device

    def measure(self, generator: torch.nn.Module) -> float:
        fakes = generate_uint8(generator, self.z, 1000, self.device, self.cond)
        fake_features, _ = extract(self.evaluator.model, fakes, 1000, self.device)
        return frechet_distance(self.real_features, fake_features)
