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


CHOICE_BITS = 16  # noise columns whose signs pick a sampled cluster: 2^16 equal slots


class ClusterPriorGenerator(nn.Module):
    """A cluster-conditioned generator that samples unconditionally: ``G(z)`` draws its own cluster.

    ``z`` has ``CHOICE_BITS`` more columns than the inner :class:`ConditionalGenerator`
    takes. Given ``c`` (B cluster indices: training, preview grids) those columns
    are ignored. Without ``c`` (or with a B×0 one) their signs, read as a binary
    number ``b`` in [0, 2^16), pick the cluster whose slice of ``cluster_cdf``
    holds ``(b + 0.5) / 2^16``: each sign is a fair coin for any noise symmetric
    about 0 (plain or truncated), so clusters come out in their training shares
    (to 1/65,536) whatever the truncation ψ, independently of the columns the
    inner network sees. To everything after training (evaluation, ``generate``,
    walks, export) it is an unconditional ``G(z)``; only comparisons and sums,
    so it exports to ONNX as one.
    """

    def __init__(self, inner: ConditionalGenerator, clusters: int):
        super().__init__()
        self.inner = inner
        # cumulative training shares, set by the train stage (saved with the weights); uniform until then
        self.register_buffer("cluster_cdf", torch.arange(1, clusters + 1, dtype=torch.float32) / clusters)
        self.register_buffer("bit_values", 2.0 ** torch.arange(CHOICE_BITS - 1, -1, -1, dtype=torch.float32),
                             persistent=False)

    def set_shares(self, shares: torch.Tensor) -> None:
        """The clusters' training shares (float, k, summing to 1) that unconditional sampling follows."""
        cdf = torch.cumsum(shares.to(torch.float64), 0)
        self.cluster_cdf.copy_((cdf / cdf[-1]).to(torch.float32))

    def choose(self, z: torch.Tensor) -> torch.Tensor:
        """The cluster (int64, B) that noise ``z`` (B × (inner z + CHOICE_BITS), float) samples."""
        bits = (z[:, -CHOICE_BITS:] > 0).to(torch.float32)
        u = ((bits * self.bit_values).sum(1) + 0.5) / float(2 ** CHOICE_BITS)
        return (u.unsqueeze(1) > self.cluster_cdf[:-1]).sum(1)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B × C × H × W in [-1, 1]) for noise ``z``; clusters ``c`` (int64, B) or drawn from ``z``."""
        if c is None or c.numel() == 0:
            c = self.choose(z)
        return self.inner(z[:, :-CHOICE_BITS], c)
