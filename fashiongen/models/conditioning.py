"""Conditional wrappers: a generator fed noise + a condition, a projection discriminator.

``model.condition``:

- ``label``: the condition is a class index; the generator receives a learned
  class embedding concatenated with the noise, and the discriminator adds the
  inner product of a learned class embedding with its spatially summed
  features (the projection discriminator of Miyato & Koyama, 2018);
- ``encoding``: the condition is the ResNet encoding of a real image (the seed
  project's design): the generator receives noise ⊕ encoding, and the
  discriminator projects the encoding onto its features, so it judges whether
  an image fits the encoding it was paired with.

Both wrap an unconditional network from :mod:`fashiongen.models.factory`
(whose discriminators expose ``features``, ``feature_channels`` and ``head``),
so every architecture supports every condition.
"""

from __future__ import annotations

import torch
from torch import nn

CONDITIONS = ("none", "label", "encoding")


class ConditionalGenerator(nn.Module):
    """G(z, c) = base(z ⊕ embed(c)); ``base`` was built for ``z_dim + condition width`` inputs."""

    def __init__(self, base: nn.Module, condition: str, num_classes: int, cond_dim: int):
        super().__init__()
        self.base = base
        self.condition = condition
        self.embedding = nn.Embedding(num_classes, cond_dim) if condition == "label" else None

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.from_code(z, self.code(cond).to(z.dtype))

    def code(self, cond: torch.Tensor) -> torch.Tensor:
        """What is concatenated to the noise for ``cond``: the class embedding (B × cond_dim) or the encoding itself."""
        return self.embedding(cond) if self.embedding is not None else cond.float()

    def from_code(self, z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """Images for noise ``z`` (B × z_dim) and condition codes (B × width): interpolated codes included."""
        return self.base(torch.cat([z, code.to(z.dtype)], dim=1))


class ProjectionDiscriminator(nn.Module):
    """D(x, c) = head(h) + <P(c), sum_xy h>, h = features(x).

    The projection sees the feature map summed over positions, one value per
    channel, as in Miyato & Koyama: projected onto the whole flattened map
    (3,136 values at 28 px, 32/32) the class term was a per-class linear
    classifier over every position, and label models at 32/32 collapsed to
    one garment per class (docs/experiments.md).
    """

    def __init__(self, base: nn.Module, condition: str, num_classes: int, cond_dim: int):
        super().__init__()
        self.base = base
        self.channels = base.feature_channels
        if condition == "label":
            self.project: nn.Module = nn.Embedding(num_classes, self.channels)
        else:
            self.project = nn.Linear(cond_dim, self.channels, bias=False)
        nn.init.normal_(self.project.weight, 0.0, 0.02)

    def forward(self, images: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.base.features(images)
        pooled = h.reshape(h.shape[0], self.channels, -1).sum(dim=2)
        return self.base.head(h).squeeze(1) + (self.project(cond).to(h.dtype) * pooled).sum(dim=1)
