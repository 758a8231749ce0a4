"""DCGAN generator and discriminator for square images of 28, 32, 64 or 128 px.

The layout follows Radford et al. (2016) and pytorch/examples: the generator
projects the noise to a ``base×base`` map and doubles the resolution with
stride-2 transposed convolutions (BatchNorm + ReLU, tanh output); the
discriminator mirrors it with stride-2 convolutions (LeakyReLU 0.2, BatchNorm
after the first). Channel counts scale with ``width`` (the textbook model is
64/64) and halve at every doubling of resolution. 28 px (Fashion-MNIST) starts
from 7×7; the powers of two start from 4×4.

Two layers are written in a cheaper but equivalent form (same parameters, same
function; tests/test_models.py checks both against the textbook layers):

- the noise projection is a Linear layer: a transposed convolution of a 1×1
  input is exactly a matrix product. Its output rows are laid out so the view
  to a feature map is already channels-last, the layout the convolutions use;
- the discriminator's first convolution, whose reduction is short (1 or 3
  input channels × 4×4), is a :class:`~fashiongen.models.layers.PatchConv2d`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fashiongen.models.layers import Modulation, PatchConv2d, join_condition, make_norm, refuse_condition

SUPPORTED_SIZES = (28, 32, 64, 128)


def resolution_plan(image_size: int) -> tuple[int, int]:
    """``(base, doublings)``: the starting map size and how many ×2 steps reach ``image_size``."""
    if image_size == 28:
        return 7, 2
    if image_size in SUPPORTED_SIZES:
        return 4, int(math.log2(image_size // 4))
    raise ValueError(f"image size {image_size} is not supported; use one of {SUPPORTED_SIZES}")


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialisation: weights N(0, 0.02); BatchNorm scale N(1, 0.02), shift 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class NoiseProjection(nn.Module):
    """Noise (B, in) -> feature map (B, C, base, base), BatchNorm + ReLU.

    Output unit ``(i * base + j) * C + c`` of the Linear layer is channel ``c``
    at position ``(i, j)``: the feature map is a free view in channels-last.
    """

    def __init__(self, in_features: int, channels: int, base: int):
        super().__init__()
        self.channels, self.base = channels, base
        self.linear = nn.Linear(in_features, channels * base * base, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, z: torch.Tensor, modulate=None) -> torch.Tensor:
        """``modulate``: a callable applied between the norm and the activation (class-conditional BatchNorm)."""
        x = self.norm(self.linear(z).view(z.shape[0], self.base, self.base, self.channels).permute(0, 3, 1, 2))
        return self.act(modulate(x) if modulate is not None else x)


def _up_block(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def _down_block(in_ch: int, out_ch: int, norm: str | None, dropout: float, conv: type[nn.Conv2d] = nn.Conv2d) -> nn.Sequential:
    layers: list[nn.Module] = [conv(in_ch, out_ch, 4, 2, 1, bias=False)]
    if norm is not None:
        layers.append(make_norm(norm, out_ch))
    # in place only after a real convolution: on PatchConv2d's output (a view) an in-place op
    # would make autograd rebuild the base tensor in the backward pass
    layers.append(nn.LeakyReLU(0.2, inplace=conv is not PatchConv2d))
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """z (B, z_dim) and a condition code c (B, cond_dim) -> images (B, channels, size, size) in [-1, 1].

    The code is concatenated with the noise; with ``modulation`` it also sets
    a per-channel gain and bias after every BatchNorm (class-conditional
    BatchNorm, Brock et al. 2019: :class:`~fashiongen.models.layers.Modulation`).
    """

    def __init__(self, z_dim: int, width: int, channels: int, image_size: int, cond_dim: int = 0,
                 modulation: bool = False):
        super().__init__()
        base, doublings = resolution_plan(image_size)
        ch = width * 2 ** (doublings - 1)
        self.z_dim = z_dim
        self.project = NoiseProjection(z_dim + cond_dim, ch, base)
        blocks, widths = [], [ch]
        for _ in range(doublings - 1):
            blocks.append(_up_block(ch, ch // 2))
            ch //= 2
            widths.append(ch)
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Sequential(nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh())
        self.apply(init_dcgan_weights)
        self.modulations = modulations(widths, cond_dim) if modulation else None

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """``c``: the condition's code (B, cond_dim), empty for an unconditional generator."""
        if self.modulations is None:
            return self.to_image(self.blocks(self.project(join_condition(z, c))))
        first, *rest = self.modulations
        x = self.project(join_condition(z, c), lambda h: first(h, c))
        for (conv, norm, act), modulate in zip(self.blocks, rest):
            x = act(modulate(norm(conv(x)), c))
        return self.to_image(x)


def modulations(widths: list[int], cond_dim: int) -> nn.ModuleList:
    """One :class:`Modulation` per feature map of ``widths`` channels; a ValueError without a condition."""
    if cond_dim <= 0:
        raise ValueError("modulation (model.g_cond: modulation) needs a condition (model.condition label or encoding)")
    return nn.ModuleList(Modulation(width, cond_dim) for width in widths)


class Discriminator(nn.Module):
    """images (B, channels, size, size) in [-1, 1] -> one logit per image (B,).

    ``norm`` is the normalisation after every convolution but the first
    (``batch`` as in the paper, ``layer`` or ``none`` for WGAN-GP's per-sample
    gradient penalty); ``dropout`` follows every activation.
    """

    def __init__(self, width: int, channels: int, image_size: int, norm: str = "batch", dropout: float = 0.0):
        super().__init__()
        base, halvings = resolution_plan(image_size)
        blocks = [_down_block(channels, width, norm=None, dropout=dropout, conv=PatchConv2d)]
        ch = width
        for _ in range(halvings - 1):
            blocks.append(_down_block(ch, ch * 2, norm=norm, dropout=dropout))
            ch *= 2
        self.features = nn.Sequential(*blocks, nn.Flatten())
        self.feature_channels = ch  # channels of the map that ``features`` flattens (for projection)
        self.head = nn.Linear(ch * base * base, 1, bias=False)
        self.apply(init_dcgan_weights)

    def forward(self, images: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        refuse_condition(c)
        return self.head(self.features(images)).squeeze(1)
