"""GAN objectives, each a pair of losses over the discriminator's raw outputs, and the gradient penalties.

A loss object knows three things: the discriminator's loss given its outputs on
real and generated images, the generator's loss given the outputs on generated
images (and, for a relativistic loss, ``needs_real_in_g``, on the real images
of the batch), and how to turn an output into the score users plot as D(x) /
D(G(z)) (a probability for BCE, the raw output for the others). WGAN-GP also
asks for its gradient penalty, which needs the discriminator itself: see
:func:`gradient_penalty`, applied by the trainer when ``gradient_penalty`` is set.

The zero-centred penalties R1 (on real images, Mescheder et al. 2018, "Which
training methods for GANs do actually converge?") and R2 (the same on
generated images; both together are R3GAN's regulariser, Huang et al. 2024)
work with every loss: :func:`zero_centred_penalty`, weighted by
``model.r1_gamma`` / ``model.r2_gamma``.

All outputs are float32 tensors of shape (B,) (one logit per image); losses
are float32 scalars.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch
from torch.nn import functional as F


class GANLoss(Protocol):
    name: str
    gradient_penalty: bool
    needs_real_in_g: bool  # g_loss compares the fakes with the batch's real images (relativistic)

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor: ...

    def g_loss(self, fake_out: torch.Tensor, real_out: torch.Tensor | None = None) -> torch.Tensor: ...

    def score(self, out: torch.Tensor) -> torch.Tensor: ...


class NonSaturatingBCE:
    """Goodfellow et al.'s loss with the non-saturating generator objective.

    Written with softplus on logits, which equals BCE-with-logits and stays
    finite for large outputs.
    """

    name = "bce"
    gradient_penalty = False
    needs_real_in_g = False

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()

    def g_loss(self, fake_out: torch.Tensor, real_out: torch.Tensor | None = None) -> torch.Tensor:
        return F.softplus(-fake_out).mean()

    def score(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)


class LeastSquares:
    """LSGAN (Mao et al., 2017) with targets 1 for real and 0 for generated."""

    name = "lsgan"
    gradient_penalty = False
    needs_real_in_g = False

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real_out - 1).square().mean() + fake_out.square().mean())

    def g_loss(self, fake_out: torch.Tensor, real_out: torch.Tensor | None = None) -> torch.Tensor:
        return 0.5 * (fake_out - 1).square().mean()

    def score(self, out: torch.Tensor) -> torch.Tensor:
        return out


class Hinge:
    """The hinge loss of SAGAN / BigGAN: margins at ±1 for D, the raw output for G."""

    name = "hinge"
    gradient_penalty = False
    needs_real_in_g = False

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - real_out).mean() + F.relu(1 + fake_out).mean()

    def g_loss(self, fake_out: torch.Tensor, real_out: torch.Tensor | None = None) -> torch.Tensor:
        return -fake_out.mean()

    def score(self, out: torch.Tensor) -> torch.Tensor:
        return out


class Wasserstein:
    """WGAN-GP (Gulrajani et al., 2017): the critic's Wasserstein estimate plus a gradient penalty."""

    name = "wgan-gp"
    gradient_penalty = True
    needs_real_in_g = False

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return fake_out.mean() - real_out.mean()

    def g_loss(self, fake_out: torch.Tensor, real_out: torch.Tensor | None = None) -> torch.Tensor:
        return -fake_out.mean()

    def score(self, out: torch.Tensor) -> torch.Tensor:
        return out


class RelativisticPairing:
    """The relativistic pairing GAN loss (RpGAN; Jolicoeur-Martineau 2019, Sun et al. 2020), R3GAN's objective.

    Each real image of the batch is paired with one generated image (the one
    at the same position): D learns ``softplus(-(D(x) - D(G(z))))``, G the
    mirror ``softplus(-(D(G(z)) - D(x)))``. Because D only judges pairs, it
    cannot push all fakes to one side of a fixed boundary, which is what
    drives mode dropping with the non-saturating loss (Sun et al.). Huang et
    al. (2024) show it converges locally with R1 + R2 (:func:`zero_centred_penalty`).
    The plotted score is the raw output.
    """

    name = "rpgan"
    gradient_penalty = False
    needs_real_in_g = True

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return F.softplus(fake_out - real_out).mean()

    def g_loss(self, fake_out: torch.Tensor, real_out: torch.Tensor | None = None) -> torch.Tensor:
        if real_out is None:
            raise ValueError("the rpgan generator loss needs the discriminator's outputs on the real images")
        return F.softplus(real_out - fake_out).mean()

    def score(self, out: torch.Tensor) -> torch.Tensor:
        return out


def zero_centred_penalty(out: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``E ||∇_x D(x)||²`` over the batch: R1 when ``inputs`` are real images, R2 when generated.

    ``out`` (B,) is D's output computed from ``inputs`` (B, C, H, W), which
    must require grad; the graph is kept (``create_graph``) so the penalty
    trains D. The usual weight is ``γ/2`` (Mescheder et al. 2018); returns a
    float32 scalar ≥ 0.
    """
    (grads,) = torch.autograd.grad(out.float().sum(), inputs, create_graph=True)
    return grads.float().square().sum(dim=(1, 2, 3)).mean()


def gradient_penalty(
    discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator
) -> torch.Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates x_hat of real and fake images."""
    mix = torch.rand(len(real), 1, 1, 1, device=real.device, generator=rng)
    interpolates = (mix * real + (1 - mix) * fake.detach()).requires_grad_(True)
    out = discriminator(interpolates).float()
    (grads,) = torch.autograd.grad(out.sum(), interpolates, create_graph=True)
    return (grads.flatten(1).norm(2, dim=1) - 1).square().mean()


LOSSES: dict[str, type] = {
    cls.name: cls for cls in (NonSaturatingBCE, LeastSquares, Hinge, Wasserstein, RelativisticPairing)
}


def make_loss(name: str) -> GANLoss:
    try:
        return LOSSES[name]()
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None
