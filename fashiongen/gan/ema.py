"""An exponential moving average of the generator's weights, and what sampling it needs.

The average generator is smoother than the last iterate and is what gets
saved, sampled and scored (``train.ema`` > 0). Parameters are averaged;
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


class GeneratorEMA:
    """``average = decay·average + (1-decay)·current`` after every generator update.

    The decay warms up as ``min(decay, (1 + t) / (10 + t))`` so that the
    average is not dominated by the random initialisation early in training.
    """

    def __init__(self, generator: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(generator).requires_grad_(False)
        self._live = [p for p in generator.parameters()]
        self._avg = [p for p in self.module.parameters()]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
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
