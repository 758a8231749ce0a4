"""Building networks by name: the one place that maps ``model.arch`` to classes."""

from __future__ import annotations

from torch import nn

from fashiongen.models.conditioning import ConditionalGenerator, ProjectionDiscriminator
from fashiongen.models.dcgan import Discriminator, Generator
from fashiongen.models.layers import add_spectral_norm
from fashiongen.models.upsample import REPORT_DROPOUT, DropoutDiscriminator, UpsampleGenerator

ARCHS = ("dcgan", "upsample")


def build_generator(
    arch: str, z_dim: int, width: int, channels: int, image_size: int,
    condition: str = "none", num_classes: int = 0, cond_dim: int = 0,
) -> nn.Module:
    """A generator; called as ``G(z)``, or ``G(z, c)`` when ``condition`` is label or encoding."""
    inputs = z_dim + (cond_dim if condition != "none" else 0)
    if arch == "dcgan":
        base: nn.Module = Generator(inputs, width, channels, image_size)
    elif arch == "upsample":
        base = UpsampleGenerator(inputs, width, channels, image_size)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHS}")
    return base if condition == "none" else ConditionalGenerator(base, condition, num_classes, cond_dim)


def build_discriminator(
    arch: str, width: int, channels: int, image_size: int, norm: str, spectral_norm: bool, dropout: float | None,
    condition: str = "none", num_classes: int = 0, cond_dim: int = 0,
) -> nn.Module:
    """A discriminator; ``D(x)``, or the projection ``D(x, c)`` for a condition.

    ``dropout=None`` takes the architecture's own default (0 for dcgan, 0.4 for upsample).
    """
    if arch == "dcgan":
        model: nn.Module = Discriminator(width, channels, image_size, norm=norm, dropout=dropout or 0.0)
    elif arch == "upsample":
        model = DropoutDiscriminator(width, channels, image_size, norm=norm,
                                     dropout=REPORT_DROPOUT if dropout is None else dropout)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHS}")
    if condition != "none":
        model = ProjectionDiscriminator(model, condition, num_classes, cond_dim)
    return add_spectral_norm(model) if spectral_norm else model
