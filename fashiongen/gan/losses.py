"""GAN objectives, each a pair of losses over the discriminator's raw outputs.

A loss object knows three things: the discriminator's loss given its outputs on
real and generated images, the generator's loss given the outputs on generated
images, and how to turn an output into the score users plot as D(x) / D(G(z))
(a probability for BCE, the raw output for the others). WGAN-GP also asks for
a gradient penalty, which needs the discriminator itself: see
:func:`gradient_penalty`, applied by the trainer when ``gradient_penalty`` is set.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch
from torch.nn import functional as F


class GANLoss(Protocol):
    name: str
    gradient_penalty: bool

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor: ...

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor: ...

    def score(self, out: torch.Tensor) -> torch.Tensor: ...


class NonSaturatingBCE:
    """Goodfellow et al.'s loss with the non-saturating generator objective.

    Written with softplus on logits, which equals BCE-with-logits and stays
    finite for large outputs.
    """

    name = "bce"
    gradient_penalty = False

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_out).mean()

    def score(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)


class LeastSquares:
    """LSGAN (Mao et al., 2017) with targets 1 for real and 0 for generated."""

    name = "lsgan"
    gradient_penalty = False

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real_out - 1).square().mean() + fake_out.square().mean())

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return 0.5 * (fake_out - 1).square().mean()

    def score(self, out: torch.Tensor) -> torch.Tensor:
        return out


class Hinge:
    """The hinge loss of SAGAN / BigGAN: margins at ±1 for D, the raw output for G."""

    name = "hinge"
    gradient_penalty = False

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - real_out).mean() + F.relu(1 + fake_out).mean()

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return -fake_out.mean()

    def score(self, out: torch.Tensor) -> torch.Tensor:
        return out


class Wasserstein:
    """WGAN-GP (Gulrajani et al., 2017): the critic's Wasserstein estimate plus a gradient penalty."""

    name = "wgan-gp"
    gradient_penalty = True

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return fake_out.mean() - real_out.mean()

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return -fake_out.mean()

    def score(self, out: torch.Tensor) -> torch.Tensor:
        return out


def gradient_penalty(
    discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator
) -> torch.Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates x_hat of real and fake images."""
    mix = torch.rand(len(real), 1, 1, 1, device=real.device, generator=rng)
    interpolates = (mix * real + (1 - mix) * fake.detach()).requires_grad_(True)
    out = discriminator(interpolates).float()
    (grads,) = torch.autograd.grad(out.sum(), interpolates, create_graph=True)
    return (grads.flatten(1).norm(2, dim=1) - 1).square().mean()


LOSSES: dict[str, type] = {cls.name: cls for cls in (NonSaturatingBCE, LeastSquares, Hinge, Wasserstein)}


def make_loss(name: str) -> GANLoss:
    try:
        return LOSSES[name]()
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None
