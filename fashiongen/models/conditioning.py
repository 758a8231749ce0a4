"""Conditional wrappers: a generator fed noise + a condition, a projection discriminator.

Which condition a network gets, and what turns it into inputs, is decided by
its kind in :mod:`fashiongen.gan.conditions`; these modules only do the
arithmetic:

- :class:`ConditionalGenerator`: ``G(z, c) = base(z, embed(c))`` (a learned class
  embedding for labels, the encoding itself for encodings), the base network
  built for ``z_dim + width`` inputs;
- :class:`ProjectionDiscriminator`: ``D(x, c) = head(h) + <P(c), sum_xy h>``,
  the projection discriminator of Miyato & Koyama (2018), so it judges whether
  an image fits the condition it is paired with.

Both wrap a network from :mod:`fashiongen.models.factory` (whose discriminators
expose ``features``, ``feature_channels`` and ``head``), so every architecture
supports every condition.
"""

from __future__ import annotations

import torch
from torch import nn


class ConditionalGenerator(nn.Module):
    """G(z, c) = base(z, embed(c)); ``embedding`` None feeds ``c`` (float rows) as it is."""

    def __init__(self, base: nn.Module, embedding: nn.Module | None):
        super().__init__()
        self.base = base
        self.embedding = embedding

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.from_code(z, self.code(c))

    def code(self, c: torch.Tensor) -> torch.Tensor:
        """The rows fed beside the noise for conditions ``c``: the class embedding (B × width) or the encoding itself."""
        return self.embedding(c) if self.embedding is not None else c

    def from_code(self, z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """Images for noise ``z`` (B × z_dim) and condition rows ``code`` (B × width), interpolated ones included."""
        return self.base(z, code.to(z.dtype))


class ProjectionDiscriminator(nn.Module):
    """D(x, c) = head(h) + <P(c), sum_xy h>, h = features(x).

    The projection sees the feature map summed over positions, one value per
    channel, as in Miyato & Koyama: projected onto the whole flattened map
    (3,136 values at 28 px, 32/32) the class term was a per-class linear
    classifier over every position, and label models at 32/32 collapsed to
    one garment per class (docs/experiments.md). ``project`` maps a condition
    to ``base.feature_channels`` values (an embedding of classes, or a linear
    map of encodings).
    """

    def __init__(self, base: nn.Module, project: nn.Module):
        super().__init__()
        self.base = base
        self.channels = base.feature_channels
        self.project = project
        nn.init.normal_(self.project.weight, 0.0, 0.02)

    def forward(self, images: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.base.features(images)
        pooled = h.reshape(h.shape[0], self.channels, -1).sum(dim=2)
        return self.base.head(h).squeeze(1) + (self.project(c).to(h.dtype) * pooled).sum(dim=1)
