"""One adversarial training step, kept free of logging, files and Python per image.

:class:`GANTrainer` owns the two networks, their optimisers and the loss. A
step takes a batch of real images already on the device and returns the
step's statistics as one detached tensor, without synchronising with the
device: the caller sums them and reads them only every ``log_every`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fashiongen.gan.losses import GANLoss

# Order of the values in the tensor a step returns.
STAT_NAMES = ("d_loss", "g_loss", "d_real", "d_fake")


@dataclass
class GANTrainer:
    generator: nn.Module
    discriminator: nn.Module
    loss: GANLoss
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    z_dim: int
    rng: torch.Generator

    def sample_noise(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randn(n, self.z_dim, device=device, generator=self.rng)

    def step(self, real: torch.Tensor) -> torch.Tensor:
        """One discriminator update then one generator update on the same fakes."""
        z = self.sample_noise(len(real), real.device)
        fake = self.generator(z)

        real_out = self.discriminator(real)
        fake_out = self.discriminator(fake.detach())
        d_loss = self.loss.d_loss(real_out, fake_out)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        g_loss = self.loss.g_loss(self.discriminator(fake))
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()

        with torch.no_grad():
            return torch.stack(
                [
                    d_loss.detach().float(),
                    g_loss.detach().float(),
                    self.loss.score(real_out.detach()).float().mean(),
                    self.loss.score(fake_out.detach()).float().mean(),
                ]
            )
