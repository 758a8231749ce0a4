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
- on a GPU (and, with ``train.cpu_bf16``, on a CPU with native bf16) the
  forward passes run under bf16 autocast (losses in float32), and
  ``compile=True`` hands both networks to ``torch.compile``.

Options from the quality work: ``d_steps`` discriminator updates per generator
update, WGAN-GP's gradient penalty (when the loss asks for it), DiffAugment
(``augment``, applied to real and fake alike) and the generator EMA, updated
after every generator update.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn

from fashiongen.gan.augment import Augment
from fashiongen.gan.checkpoints import capture_rng, restore_rng
from fashiongen.gan.ema import GeneratorEMA
from fashiongen.gan.losses import GANLoss, gradient_penalty

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
    amp_dtype: torch.dtype | None = None  # bf16 autocast; None = full precision
    compile: bool = False
    d_steps: int = 1
    gp_weight: float = 10.0
    augment: Augment | None = None
    ema: GeneratorEMA | None = None
    # called on each network after its backward pass (several processes: average the gradients)
    grad_sync: Callable[[nn.Module], None] | None = None
    _g: Callable = field(init=False, repr=False)
    _d: Callable = field(init=False, repr=False)
    _d_updates: int = field(init=False, default=0)
    _g_loss: torch.Tensor = field(init=False, default_factory=lambda: torch.zeros(()))  # last generator loss

    def __post_init__(self) -> None:
        # compiled callables for the hot path; the plain modules keep the state dicts
        self._g = torch.compile(self.generator) if self.compile else self.generator
        self._d = torch.compile(self.discriminator) if self.compile else self.discriminator

    @property
    def sampler(self) -> nn.Module:
        """The generator to sample, save and score: the EMA average when there is one."""
        return self.ema.module if self.ema is not None else self.generator

    def state_dict(self) -> dict[str, Any]:
        """Everything that determines the rest of training: weights, optimisers, EMA, RNGs."""
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "d_updates": self._d_updates,
            "g_loss": self._g_loss.cpu(),
            "rng": capture_rng(self.rng),
        }

    def load_state_dict(self, state: dict[str, Any], fallback_seed: int = 0) -> None:
        """Restore :meth:`state_dict`; ``fallback_seed`` reseeds a noise stream saved on another device type."""
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self._d_updates = state["d_updates"]
        self._g_loss = state["g_loss"]
        restore_rng(state["rng"], self.rng, fallback_seed)

    def sample_noise(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randn(n, self.z_dim, device=device, generator=self.rng)

    def _autocast(self, device: torch.device):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.amp_dtype)

    def _view(self, images: torch.Tensor) -> torch.Tensor:
        """What the discriminator sees: the images, augmented when DiffAugment is on."""
        return self.augment(images, self.rng) if self.augment is not None else images


    def step(self, real: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """One discriminator update, and every ``d_steps``-th call one generator update on the same fakes.

        ``cond`` holds the conditions of the real images (class indices,
        encodings, or empty rows for an unconditional model); the fakes are
        generated for the same conditions.
        """
        z = self.sample_noise(len(real), real.device)
        with self._autocast(real.device):
            fake = self._g(z, cond)
            real_out = self._d(self._view(real), cond).float()
            fake_out = self._d(self._view(fake.detach()), cond).float()
        d_loss = self.loss.d_loss(real_out, fake_out)
        if self.loss.gradient_penalty:
            d_loss = d_loss + self.gp_weight * gradient_penalty(lambda x: self._d(x, cond), real, fake, self.rng)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        if self.grad_sync is not None:
            self.grad_sync(self.discriminator)
        self.opt_d.step()
        self._d_updates += 1

        if self._d_updates % self.d_steps == 0:
            self._g_loss = self._generator_update(fake, cond)

        with torch.no_grad():
            return torch.stack(
                [
                    d_loss.detach().float(),
                    self._g_loss.to(real.device),
                    self.loss.score(real_out.detach()).float().mean(),
                    self.loss.score(fake_out.detach()).float().mean(),
                ]
            )

    def _generator_update(self, fake: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        with frozen(self.discriminator):
            with self._autocast(fake.device):
                g_out = self._d(self._view(fake), cond).float()
            g_loss = self.loss.g_loss(g_out)
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
        if self.grad_sync is not None:
            self.grad_sync(self.generator)
        self.opt_g.step()
        if self.ema is not None:
            self.ema.update()
        return g_loss.detach().float()
