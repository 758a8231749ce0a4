"""Building networks by name: the one place that maps ``model.arch`` to classes.

The condition (``model.condition``, a trained one: not ``auto``) wraps the
architecture's networks (:mod:`fashiongen.models.conditioning`), so every
architecture supports every condition and both networks are called ``G(z, c)``
and ``D(x, c)``.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from fashiongen.models.conditioning import extra_noise, wrap_discriminator, wrap_generator
from fashiongen.models.dcgan import Discriminator, Generator
from fashiongen.models.layers import add_spectral_norm
from fashiongen.models.resnet import ResNetDiscriminator, ResNetGenerator
from fashiongen.models.upsample import REPORT_DROPOUT, DropoutDiscriminator, UpsampleGenerator

# model.arch -> (generator class(z_dim, width, channels, size, cond_dim=0, modulation=False),
#               discriminator builder(width, channels, size, norm, dropout)); both also take the architecture's
# own shape options (resnet: stage_widths, block, group_width, blocks_per_stage) as keywords
GENERATORS: dict[str, Callable[..., nn.Module]] = {
    "dcgan": Generator, "upsample": UpsampleGenerator, "resnet": ResNetGenerator,
}
DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {
    "dcgan": lambda width, channels, size, norm, dropout: Discriminator(width, channels, size, norm=norm,
                                                                      dropout=dropout or 0.0),
    "upsample": lambda width, channels, size, norm, dropout: DropoutDiscriminator(
        width, channels, size, norm=norm, dropout=REPORT_DROPOUT if dropout is None else dropout),
    "resnet": ResNetDiscriminator,
}
ARCHS = tuple(GENERATORS)


def _known(arch: str) -> None:
    if arch not in GENERATORS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHS}")


def build_generator(
    arch: str, z_dim: int, width: int, channels: int, image_size: int,
    condition: str, num_classes: int = 0, cond_dim: int = 0, modulation: bool = False,
    arch_options: dict | None = None,
) -> nn.Module:
    """A generator ``G(z, c)`` of ``z_dim`` noise columns (the condition may keep ``extra_noise(condition)`` of them
    for itself); ``cond_dim`` is the width of the condition's code (fed beside the noise, and with
    ``modulation`` also to a class-conditional gain and bias of every block's features). ``arch_options``: the architecture's own shape keywords (resnet's)."""
    _known(arch)
    base = GENERATORS[arch](z_dim - extra_noise(condition), width, channels, image_size, cond_dim=cond_dim,
                            modulation=modulation, **(arch_options or {}))
    return wrap_generator(condition, base, num_classes, cond_dim)


def build_discriminator(
    arch: str, width: int, channels: int, image_size: int, norm: str, spectral_norm: bool, dropout: float | None,
    condition: str, num_classes: int = 0, cond_dim: int = 0, arch_options: dict | None = None,
) -> nn.Module:
    """A discriminator ``D(x, c)``; ``arch_options`` as for :func:`build_generator`.

    ``dropout=None`` takes the architecture's own default (0 for dcgan, 0.4 for upsample).
    """
    _known(arch)
    base = DISCRIMINATORS[arch](width, channels, image_size, norm, dropout, **(arch_options or {}))
    model = wrap_discriminator(condition, base, num_classes, cond_dim)
    return add_spectral_norm(model) if spectral_norm else model
