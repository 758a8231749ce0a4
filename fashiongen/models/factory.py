"""Building networks by name: the one place that maps ``model.arch`` to classes."""

from __future__ import annotations

from torch import nn

from fashiongen.models.dcgan import Discriminator, Generator
from fashiongen.models.layers import add_spectral_norm
from fashiongen.models.upsample import REPORT_DROPOUT, DropoutDiscriminator, UpsampleGenerator

ARCHS = ("dcgan", "upsample")


def build_generator(arch: str, z_dim: int, width: int, channels: int, image_size: int) -> nn.Module:
    if arch == "dcgan":
        return Generator(z_dim, width, channels, image_size)
    if arch == "upsample":
        return UpsampleGenerator(z_dim, width, channels, image_size)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHS}")


def build_discriminator(
    arch: str, width: int, channels: int, image_size: int, norm: str, spectral_norm: bool, dropout: float | None
) -> nn.Module:
    """``dropout=None`` takes the architecture's own default (0 for dcgan, 0.4 for upsample)."""
    if arch == "dcgan":
        model: nn.Module = Discriminator(width, channels, image_size, norm=norm, dropout=dropout or 0.0)
    elif arch == "upsample":
        model = DropoutDiscriminator(width, channels, image_size, norm=norm,
                                     dropout=REPORT_DROPOUT if dropout is None else dropout)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHS}")
    return add_spectral_norm(model) if spectral_norm else model
