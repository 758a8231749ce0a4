"""One adversarial training step, kept free of logging, files and Python per image.

:class:`GANTrainer` owns the two networks, their optimisers and the loss. A
step takes a batch of real images already on the device and returns the
step's statistics as one detached tensor, without synchronising with the
device: the caller sums them and reads them only every ``log_every`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fashiongen.gan.checkpoints import capture_rng, restore_rng
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

    def state_dict(self) -> dict[str, Any]:
        """Everything that determines the rest of training: weights, optimisers, RNGs."""
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": capture_rng(self.rng),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        restore_rng(state["rng"], self.rng)

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
