"""How the networks take a condition: the wiring of every ``model.condition``.

What a condition is comes from :data:`fashiongen.config.CONDITIONS` (no name is
compared here); this module builds the networks' side of it:

- :func:`wrap_generator`: ``G(z, c) = base(z, embed(c))`` through
  :class:`ConditionalGenerator` (a learned embedding of ``model.embed_dim``
  columns for class and cluster codes, the encoding itself for encodings), the
  base network built for ``z_dim + width`` inputs; a condition the generator
  draws itself (``cluster``) adds :class:`ClusterPriorGenerator` around it;
- :func:`wrap_discriminator`: ``D(x, c) = head(h) + <P(c), sum_xy h>`` through
  :class:`ProjectionDiscriminator`, the projection discriminator of Miyato &
  Koyama (2018), so it judges whether an image fits its condition;
- :func:`code_width` and :func:`extra_noise`: the input columns it adds.

Both wrap a network from :mod:`fashiongen.models.factory` (whose discriminators
expose ``features``, ``feature_channels`` and ``head``), so every architecture
supports every condition. Which values a condition takes in training is
:mod:`fashiongen.gan.conditions`'s.
"""

from __future__ import annotations

import torch
from torch import nn

from fashiongen.config import condition_traits


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


def code_width(condition: str, embed_dim: int, encoding_dim: int) -> int:
    """Columns the condition's code adds to the generator's input: ``embed_dim`` for a class code, ``encoding_dim``
    for an encoding, 0 without a code. A :class:`~fashiongen.errors.ConfigError` for an unknown condition."""
    traits = condition_traits(condition)
    return embed_dim if traits.class_code else encoding_dim if traits.encoder else 0


def extra_noise(condition: str) -> int:
    """Noise columns the generator keeps for itself: :data:`CHOICE_BITS` when it draws its own cluster, else 0."""
    return CHOICE_BITS if condition_traits(condition).self_drawn else 0


def wrap_generator(condition: str, base: nn.Module, num_codes: int, width: int) -> nn.Module:
    """``G(z, c)`` for ``condition`` from a base network called ``base(z, code)`` (``code``: B × ``width``).

    ``num_codes``: the classes (or clusters) a class code indexes. Parameters are created in a fixed order
    (base, then embedding), so a seed gives the same initial weights.
    """
    traits = condition_traits(condition)
    if not traits.takes_code:
        return base  # base(z, c) with an empty c
    embedding = nn.Embedding(num_codes, width) if traits.class_code else None
    generator = ConditionalGenerator(base, embedding)
    return ClusterPriorGenerator(generator, num_codes) if traits.self_drawn else generator


def wrap_discriminator(condition: str, base: nn.Module, num_codes: int, width: int) -> nn.Module:
    """``D(x, c)`` for ``condition`` from a base discriminator with ``features``/``head``/``feature_channels``.

    The projection ``P`` is an embedding of ``num_codes`` class codes, or a linear map of ``width``-wide
    encodings; without a code the base is returned as it is.
    """
    traits = condition_traits(condition)
    if not traits.takes_code:
        return base
    channels = base.feature_channels
    project = nn.Embedding(num_codes, channels) if traits.class_code else nn.Linear(width, channels, bias=False)
    return ProjectionDiscriminator(base, project)
