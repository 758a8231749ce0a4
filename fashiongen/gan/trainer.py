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
update, WGAN-GP's gradient penalty (when the loss asks for it), the
zero-centred R1/R2 penalties (any loss; lazily every ``reg_every`` D updates,
weighted by ``reg_every``, as StyleGAN2 does; in separate passes of
``reg_chunk`` images when the batch's own pass would hold too much memory),
schedules of the learning rates
and penalty weights over the run (:mod:`fashiongen.gan.schedules`), DiffAugment
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
from fashiongen.gan.losses import GANLoss, gradient_penalty, zero_centred_penalty
from fashiongen.gan.schedules import RunSchedule

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
    r1_gamma: float = 0.0  # R1 (real) and R2 (generated) weights γ: the penalty is γ/2·E||∇D||²
    r2_gamma: float = 0.0
    reg_every: int = 1  # lazy regularisation: R1/R2 every this many D updates, weighted by it
    # images per separate R1/R2 pass (memory ∝ it); None = the penalties share the D step's own pass over the batch
    reg_chunk: int | None = None
    # the learning rates' and γs' multipliers by the images seen (the run's, from build_trainer); default: constant
    schedule: RunSchedule = field(default_factory=RunSchedule)
    augment: Augment | None = None
    ema: GeneratorEMA | None = None
    # called on each network after its backward pass (several processes: average the gradients)
    grad_sync: Callable[[nn.Module], None] | None = None
    _g: Callable = field(init=False, repr=False)
    _d: Callable = field(init=False, repr=False)
    _d_updates: int = field(init=False, default=0)
    _g_loss: torch.Tensor = field(init=False, default_factory=lambda: torch.zeros(()))  # last generator loss
    _base_lrs: list[list[float]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        # compiled callables for the hot path; the plain modules keep the state dicts
        self._g = torch.compile(self.generator) if self.compile else self.generator
        self._d = torch.compile(self.discriminator) if self.compile else self.discriminator
        # the learning rates the schedule scales (an optimiser's state dict holds the scaled ones)
        self._base_lrs = [[group["lr"] for group in opt.param_groups] for opt in (self.opt_g, self.opt_d)]

    @property
    def progress(self) -> float:
        """Share of the run done, in [0, 1] (0 without a horizon)."""
        return self.schedule.for_updates(self._d_updates).progress

    def _apply_schedule(self) -> float:
        """Set this update's learning rates; returns the multiplier of the R1/R2 weights."""
        scheduled = self.schedule.for_updates(self._d_updates)
        for opt, bases in zip((self.opt_g, self.opt_d), self._base_lrs):
            for group, base in zip(opt.param_groups, bases):
                group["lr"] = base * scheduled.lr_scale
        return scheduled.gamma_scale

    def _regularises(self) -> bool:
        return (self.r1_gamma > 0 or self.r2_gamma > 0) and self._d_updates % self.reg_every == 0

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
        gamma_scale = self._apply_schedule()
        regularise = self._regularises()
        fused = regularise and (self.reg_chunk is None or self.reg_chunk >= len(real))
        z = self.sample_noise(len(real), real.device)
        with self._autocast(real.device):
            fake = self._g(z, cond)
            real_view, fake_view = self._view(real), self._view(fake.detach())
            if fused:  # the penalties differentiate D's outputs by its inputs
                real_view = real_view.detach().requires_grad_(self.r1_gamma > 0)
                fake_view = fake_view.detach().requires_grad_(self.r2_gamma > 0)
            real_out = self._d(real_view, cond).float()
            fake_out = self._d(fake_view, cond).float()
        d_loss = self.loss.d_loss(real_out, fake_out)
        if self.loss.gradient_penalty:
            d_loss = d_loss + self.gp_weight * gradient_penalty(lambda x: self._d(x, cond), real, fake, self.rng)
        objective = d_loss
        if fused:
            objective = objective + self._penalties(real_out, real_view, fake_out, fake_view, gamma_scale)
        self.opt_d.zero_grad(set_to_none=True)
        objective.backward()
        if regularise and not fused:
            self._chunked_penalties(real_view.detach(), fake_view.detach(), cond, gamma_scale)
        if self.grad_sync is not None:
            self.grad_sync(self.discriminator)
        self.opt_d.step()
        self._d_updates += 1

        if self._d_updates % self.d_steps == 0:
            self._g_loss = self._generator_update(fake, cond, real_view.detach())

        with torch.no_grad():
            return torch.stack(
                [
                    d_loss.detach().float(),
                    self._g_loss.to(real.device),
                    self.loss.score(real_out.detach()).float().mean(),
                    self.loss.score(fake_out.detach()).float().mean(),
                ]
            )

    def _penalties(self, real_out: torch.Tensor | None, real_view: torch.Tensor, fake_out: torch.Tensor | None,
                   fake_view: torch.Tensor, gamma_scale: float) -> torch.Tensor:
        """``reg_every × (γ1/2·R1 + γ2/2·R2)`` at this step's γ multiplier (lazy regularisation).

        An output is only read when its γ is > 0 (None otherwise).
        """
        weight = 0.5 * self.reg_every * gamma_scale
        total = torch.zeros((), device=real_view.device)
        if self.r1_gamma > 0:
            total = total + weight * self.r1_gamma * zero_centred_penalty(real_out, real_view)
        if self.r2_gamma > 0:
            total = total + weight * self.r2_gamma * zero_centred_penalty(fake_out, fake_view)
        return total

    def _chunked_penalties(self, real_view: torch.Tensor, fake_view: torch.Tensor, cond: torch.Tensor,
                           gamma_scale: float) -> None:
        """Add the penalties' gradients to D's, ``reg_chunk`` images at a time (memory bounded by the chunk).

        Each chunk runs D again on its images and backpropagates its share
        (chunk / batch) of :meth:`_penalties` at once, so only one chunk's
        double-backward graph is alive. The sum is the batch's penalty gradient
        exactly when D treats images independently (no batch norm); with batch
        norm each chunk is normalised by its own statistics, and D's running
        statistics take one more update per chunk (D runs in training mode only).
        """
        for start in range(0, len(real_view), self.reg_chunk):
            part = slice(start, start + self.reg_chunk)
            real_part = real_view[part].requires_grad_(self.r1_gamma > 0)
            fake_part = fake_view[part].requires_grad_(self.r2_gamma > 0)
            with self._autocast(real_view.device):
                real_out = self._d(real_part, cond[part]).float() if self.r1_gamma > 0 else None
                fake_out = self._d(fake_part, cond[part]).float() if self.r2_gamma > 0 else None
            share = len(real_part) / len(real_view)
            (share * self._penalties(real_out, real_part, fake_out, fake_part, gamma_scale)).backward()

    def _generator_update(self, fake: torch.Tensor, cond: torch.Tensor, real_view: torch.Tensor) -> torch.Tensor:
        """One G step on ``fake``; a relativistic loss also sees D's outputs on the batch's (viewed) real images."""
        with frozen(self.discriminator):
            with self._autocast(fake.device):
                g_out = self._d(self._view(fake), cond).float()
                real_out = None
                if self.loss.needs_real_in_g:
                    with torch.no_grad():
                        real_out = self._d(real_view, cond).float()
            g_loss = self.loss.g_loss(g_out, real_out)
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
        if self.grad_sync is not None:
            self.grad_sync(self.generator)
        self.opt_g.step()
        if self.ema is not None:
            self.ema.update()
        return g_loss.detach().float()
