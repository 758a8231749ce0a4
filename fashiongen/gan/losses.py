"""GAN objectives, each a pair of losses over the discriminator's raw outputs.

A loss object knows three things: the discriminator's loss given its outputs on
real and generated images, the generator's loss given the outputs on generated
images, and how to turn an output into the score users plot as D(x) / D(G(z))
(a probability for BCE, the raw output for the others).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch.nn import functional as F


class GANLoss(Protocol):
    name: str

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor: ...

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor: ...

    def score(self, out: torch.Tensor) -> torch.Tensor: ...


class NonSaturatingBCE:
    """Goodfellow et al.'s loss with the non-saturating generator objective.

    Written with softplus on logits, which equals BCE-with-logits and stays
    finite for large outputs.
    """

    name = "bce"

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_out).mean()

    def score(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)


class LeastSquares:
    """LSGAN (Mao et al., 2017) with targets 1 for real and 0 for generated."""

    name = "lsgan"

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real_out - 1).square().mean() + fake_out.square().mean())

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return 0.5 * (fake_out - 1).square().mean()

    def score(self, out: torch.Tensor) -> torch.Tensor:
        return out


LOSSES: dict[str, type] = {cls.name: cls for cls in (NonSaturatingBCE, LeastSquares)}


def make_loss(name: str) -> GANLoss:
    try:
        return LOSSES[name]()
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None
