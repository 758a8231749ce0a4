"""Quick FID during training, to watch progress and pick the best checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fashiongen.data.batches import Images, Subset, bounded_batch, image_size
from fashiongen.gan.conditions import Conditions
from fashiongen.gan.sampling import noise, sample_features
from fashiongen.metrics.features import extract, load_evaluator
from fashiongen.metrics.scores import frechet_distance

BATCH = 1000  # images generated and measured at a time (fewer for big images: bounded_batch)


class FidMonitor:
    """FID of fixed noise (and fixed conditions) against fixed real images, in the evaluator's features.

    The real images are drawn from the *training* split: the best checkpoint is
    chosen by this FID, so it must not see the test images that the evaluate
    stage scores it on. A conditional generator is given the conditions of
    those same real images. Images, real and generated, are read and made
    ``BATCH`` at a time; only their features (n × feature_dim) are kept.
    """

    def __init__(self, evaluator_path: Path, real_images: Images, conditions: Conditions, n: int, seed: int,
                 z_dim: int, device):
        self.evaluator = load_evaluator(evaluator_path, device)
        choice = np.sort(np.random.default_rng(seed).choice(len(real_images), size=min(n, len(real_images)), replace=False))
        self.real_features, _ = extract(self.evaluator.model, Subset(real_images, choice), BATCH, device)
        self.z = noise(len(choice), z_dim, seed + 1)
        self.cond = conditions.of(choice)
        self.device = device
        self.batch = bounded_batch(BATCH, image_size(real_images))

    def measure(self, generator: torch.nn.Module) -> float:
        [(fake_features, _)], _ = sample_features(generator, self.z, self.cond, self.batch, self.device, [self._extract])
        return frechet_distance(self.real_features, fake_features)

    def _extract(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return extract(self.evaluator.model, images, BATCH, self.device)
