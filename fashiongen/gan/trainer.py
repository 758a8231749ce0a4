"""One adversarial training step, kept free of logging, files and Python per image.

:class:`GANTrainer` owns the two networks, their optimisers and the loss. A
step takes a batch of real images already on the device and returns the
step's statistics as one detached tensor, without synchronising with the
device: the caller sums them and reads them only every ``log_every`` steps.

What keeps the step cheap:

- the discriminator's weights are frozen (``requires_grad=False``) during the
  generator's update, so its backward pass computes only the gradient that
  flows to the generator, not weight gradients that would be thrown away
  (on the 2-core CPU this was the largest single gain, see docs/benchmarks.md);
- Adam runs fused where PyTorch offers it (one kernel for all parameters);
- on a GPU the forward passes run under bf16 autocast (losses in float32), and
  ``compile=True`` hands both networks to ``torch.compile``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn

from fashiongen.gan.checkpoints import capture_rng, restore_rng
from fashiongen.gan.losses import GANLoss

# Order of the values in the tensor a step returns.
STAT_NAMES = ("d_loss", "g_loss", "d_real", "d_fake")


def make_adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fused implementation when this PyTorch has it for the device, else foreach."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=betas, foreach=True)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Stop weight gradients of ``module`` for the duration (input gradients still flow)."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)


@dataclass
class GANTrainer:
    generator: nn.Module
    discriminator: nn.Module
    loss: GANLoss
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    z_dim: int
    rng: torch.Generator
    amp_dtype: torch.dtype | None = None  # bf16 autocast (GPU); None = full precision
    compile: bool = False
    _g: Callable = field(init=False, repr=False)
    _d: Callable = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # compiled callables for the hot path; the plain modules keep the state dicts
        self._g = torch.compile(self.generator) if self.compile else self.generator
        self._d = torch.compile(self.discriminator) if self.compile else self.discriminator

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

    def _autocast(self, device: torch.device):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.amp_dtype)

    def step(self, real: torch.Tensor) -> torch.Tensor:
        """One discriminator update then one generator update on the same fakes."""
        z = self.sample_noise(len(real), real.device)
        with self._autocast(real.device):
            fake = self._g(z)
            real_out = self._d(real).float()
            fake_out = self._d(fake.detach()).float()
        d_loss = self.loss.d_loss(real_out, fake_out)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        with frozen(self.discriminator):
            with self._autocast(real.device):
                g_out = self._d(fake).float()
            g_loss = self.loss.g_loss(g_out)
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
