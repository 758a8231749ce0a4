"""An exponential moving average of the generator's weights, and what sampling it needs.

The average generator is smoother than the last iterate and is what gets
saved, sampled and scored (``train.ema_kimg`` > 0). Parameters are averaged;
BatchNorm buffers cannot be (running statistics of one set of weights do not
describe another), so before the average is used its BatchNorm statistics are
recomputed from its own activations on fresh noise ("standing statistics",
as in BigGAN).
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

STANDING_BATCHES = 16


def ema_decay(images_per_update: int, half_life_images: float, images_seen: int, rampup: float | None) -> float:
    """The decay β of one update whose average has a half-life of ``half_life_images`` images.

    StyleGAN2-ADA's rule (Karras et al. 2020, ``ema_kimg`` and ``ema_rampup``):
    ``β = 0.5 ** (images_per_update / half_life)``, where the half-life is at
    most ``rampup × images_seen`` (the images trained on before this update),
    so early in a run, and in a short run, the average spans a fixed share of
    the run instead of reaching back to the random initialisation. β is in
    [0, 1); at the first update (no images seen, with a ramp-up) it is 0: the
    average starts as the current weights.
    """
    half_life = half_life_images if rampup is None else min(half_life_images, rampup * images_seen)
    return 0.5 ** (images_per_update / half_life) if half_life > 0 else 0.0


class GeneratorEMA:
    """``average = β·average + (1-β)·current`` after every generator update, β from a half-life in images.

    ``half_life_kimg`` (thousands of images) and ``rampup``: see :func:`ema_decay`;
    ``images_per_update`` is the number of training images between two updates
    (batch size × processes × discriminator steps per generator step).
    """

    def __init__(self, generator: nn.Module, half_life_kimg: float, images_per_update: int, rampup: float | None = 0.05):
        self.half_life_images = half_life_kimg * 1000.0
        self.images_per_update = images_per_update
        self.rampup = rampup
        self.updates = 0
        self.module = copy.deepcopy(generator).requires_grad_(False)
        self._live = [p for p in generator.parameters()]
        self._avg = [p for p in self.module.parameters()]

    @torch.no_grad()
    def update(self) -> None:
        decay = ema_decay(self.images_per_update, self.half_life_images, self.updates * self.images_per_update,
                          self.rampup)
        self.updates += 1
        torch._foreach_lerp_(self._avg, self._live, 1.0 - decay)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = state["updates"]


@torch.no_grad()
def recompute_batchnorm(
    generator: nn.Module, z_dim: int, batch_size: int, seed: int, device,
    conditions: Callable[[int, torch.Generator], torch.Tensor],
) -> None:
    """Replace the BatchNorm running statistics with the average over fresh noise batches.

    Leaves the module in eval mode. Uses a private RNG (``seed``), so the
    training RNGs, and hence resumption, are not affected. The generator gets
    its conditions from ``conditions(n, rng)`` (empty rows when unconditional).
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        generator.eval()
        return
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
    rng = torch.Generator().manual_seed(seed)
    generator.train()
    for _ in range(STANDING_BATCHES):
        z = torch.randn(batch_size, z_dim, generator=rng).to(device)
        generator(z, conditions(batch_size, rng).to(device))
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    generator.eval()
