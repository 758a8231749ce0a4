"""The 'resnet' family: normalisation-free residual networks in the style of R3GAN.

After Huang, Gokaslan, Kuleshov & Tompkin, "The GAN is dead; long live the
GAN! A modern GAN baseline" (NeurIPS 2024; github.com/brownvc/R3GAN), written
from the paper's description:

- every stage is a stack of residual blocks ``x + f(x)`` with no
  normalisation layer. The branch ``f`` is a shape of :data:`BLOCKS`:
  ``grouped`` (R3GAN's inverted bottleneck: 1×1 expansion to twice the
  channels, grouped 3×3 with ``group_width`` channels per group, 1×1
  projection), ``depthwise`` (the same with one channel per group, as
  MobileNetV2/ConvNeXt) or ``basic`` (two plain 3×3 convolutions, He et al.
  2016). LeakyReLU 0.2 after every branch layer but the last;
- fix-up initialisation (Zhang et al. 2019, as R3GAN): the branch's last
  layer starts at zero, so an untrained block is the identity, and the
  others are He-initialised and scaled by ``L^(-1/(2m-2))`` (``L`` residual
  blocks in the network, ``m`` layers per branch), which keeps the variance
  of the sum bounded once training moves the last layers off zero;
- between stages the resolution changes by bilinear resampling (the
  generator: ×2 bilinear upsampling; the discriminator: 2×2 average pooling,
  which *is* bilinear halving for a factor of 2) with a 1×1 transition
  convolution where the channel count changes, applied at the lower
  resolution (before upsampling, after downsampling) where it is cheaper;
- the generator starts from a linear *basis* layer from its input vector
  (noise ⊕ condition code) to the first ``base×base`` map and ends with a
  1×1 convolution to the image channels; the discriminator starts with a 1×1
  convolution from the image and ends with a linear head on its last map.

Stages: 28 px runs at 7, 14, 28; 32/64/128 px at 4, 8, …, size (one stage per
resolution). ``stage_widths`` gives the channels per stage, coarsest first (the
discriminator uses the same list from the finest stage down); ``None`` derives
them from ``width``: DCGAN's channel counts at the same resolutions (``2 × width``
at 7 px, ``width`` at 14 px for 28 px images), and ``width / 4`` at full
resolution, where DCGAN has no feature map. At ``width`` 32 on 28 px images
([64, 32, 8]) the default ``depthwise`` networks have 0.97× DCGAN 32/32's
parameters (the 7×7 map's basis layer holds most of them in both). The narrow
full-resolution stage and the ``depthwise`` default were chosen by speed on a
2-core CPU (benchmarks/resnet_speed.py, docs/benchmarks.md): at equal parameter
count depthwise ran fastest, and 16 instead of 8 channels at 28 px cost 5–22 %.

The generator's output is ``tanh``, unlike R3GAN's linear output: FashionGen's
images live in [-1, 1] and every consumer (the discriminator's real batches,
the evaluator's features behind FID, the ONNX export) sees G's raw output, so a
bounded output keeps fakes in the range real images have.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from fashiongen.models.dcgan import modulations, resolution_plan
from fashiongen.models.layers import join_condition, refuse_condition

NEGATIVE_SLOPE = 0.2
EXPANSION = 2  # inverted bottleneck: the branch runs at EXPANSION × the block's channels (R3GAN's expansion factor)
LEAKY_GAIN = math.sqrt(2 / (1 + NEGATIVE_SLOPE**2))  # He's gain for LeakyReLU(0.2)


def stage_resolutions(image_size: int) -> list[int]:
    """The map size of every stage, coarsest first: ``[7, 14, 28]`` or ``[4, 8, …, size]``; ValueError otherwise."""
    base, doublings = resolution_plan(image_size)
    return [base * 2**i for i in range(doublings + 1)]


def stage_widths_for(image_size: int, width: int, stage_widths: list[int] | tuple[int, ...] | None) -> list[int]:
    """Channels per stage, coarsest first: ``stage_widths`` checked against the stages of ``image_size``, or derived.

    Derived: ``width // 4`` at full resolution; ``width`` one stage coarser, doubled at every coarser one
    (DCGAN's counts).
    Raises ValueError naming the stage count when ``stage_widths`` has the wrong length.
    """
    resolutions = stage_resolutions(image_size)
    if stage_widths is None:
        coarse = [width * 2 ** (len(resolutions) - 2 - i) for i in range(len(resolutions) - 1)]
        return coarse + [max(1, width // 4)]
    if len(stage_widths) != len(resolutions):
        raise ValueError(
            f"model.stage_widths has {len(stage_widths)} entries but {image_size} px images have {len(resolutions)} "
            f"stages ({', '.join(map(str, resolutions))} px): give {len(resolutions)} channel counts, coarsest first"
        )
    return [int(w) for w in stage_widths]


def _he_init(conv: nn.Conv2d | nn.Linear, gain: float) -> None:
    """Weights N(0, (gain / sqrt(fan_in))²) (He et al. 2015; R3GAN's MSR initialiser), biases 0."""
    fan_in = conv.weight[0].numel()
    nn.init.normal_(conv.weight, 0.0, gain / math.sqrt(fan_in))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _conv(in_ch: int, out_ch: int, kernel: int, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, groups=groups)
    _he_init(conv, gain)
    return conv


# A branch shape: (channels, group_width) -> the branch's convolutions, first to last.
def _grouped(channels: int, group_width: int) -> list[tuple[int, int, int, int]]:
    wide = EXPANSION * channels
    if wide % group_width:
        raise ValueError(
            f"a grouped block of {channels} channels expands to {wide}, not a multiple of "
            f"model.resnet_group_width={group_width}; choose stage widths whose double divides by it"
        )
    return [(channels, wide, 1, 1), (wide, wide, 3, wide // group_width), (wide, channels, 1, 1)]


def _depthwise(channels: int, group_width: int) -> list[tuple[int, int, int, int]]:
    wide = EXPANSION * channels
    return [(channels, wide, 1, 1), (wide, wide, 3, wide), (wide, channels, 1, 1)]


def _basic(channels: int, group_width: int) -> list[tuple[int, int, int, int]]:
    return [(channels, channels, 3, 1), (channels, channels, 3, 1)]


# model.resnet_block -> the residual branch's layers as (in channels, out channels, kernel, groups)
BLOCKS: dict[str, Callable[[int, int], list[tuple[int, int, int, int]]]] = {
    "grouped": _grouped, "depthwise": _depthwise, "basic": _basic,
}


def branch_layers(block: str, channels: int, group_width: int) -> list[tuple[int, int, int, int]]:
    """The branch of a ``block`` residual block on ``channels``; ValueError for an unknown block name."""
    if block not in BLOCKS:
        raise ValueError(f"unknown residual block {block!r}; choose one of {tuple(BLOCKS)}")
    return BLOCKS[block](channels, group_width)


class ResidualBlock(nn.Module):
    """``x + f(x)`` on (B, C, H, W): ``f`` = the branch's convolutions with LeakyReLU 0.2 between them.

    ``variance_scale`` (``L^(-1/(2m-2))``) multiplies the He initialisation of
    every branch layer but the last, which starts at zero (fix-up, as R3GAN).
    ``modulation`` (a :class:`~fashiongen.models.layers.Modulation` on the
    first layer's output channels) applies the condition's gain and bias to the
    expanded features before their activation.
    """

    def __init__(self, layers: list[tuple[int, int, int, int]], variance_scale: float,
                 modulation: nn.Module | None = None):
        super().__init__()
        self.branch = nn.ModuleList(
            _conv(i, o, k, g, gain=LEAKY_GAIN * variance_scale) for i, o, k, g in layers
        )
        nn.init.zeros_(self.branch[-1].weight)
        self.modulation = modulation

    def forward(self, x: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        first, *rest = self.branch
        h = first(x)
        if self.modulation is not None:
            h = self.modulation(h, code)
        for conv in rest:
            h = conv(F.leaky_relu(h, NEGATIVE_SLOPE))
        return x + h


class Transition(nn.Module):
    """×2 bilinear upsampling (``up``) or 2×2 average pooling, with a 1×1 convolution where channels change.

    The convolution runs at the lower resolution: before upsampling, after downsampling.
    """

    def __init__(self, in_ch: int, out_ch: int, up: bool):
        super().__init__()
        self.up = up
        self.conv = _conv(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        if self.up:
            return F.interpolate(self.conv(x), scale_factor=2, mode="bilinear", align_corners=False)
        return self.conv(F.avg_pool2d(x, 2))


def _body(widths: list[int], up: bool, block: str, group_width: int, blocks_per_stage: int,
          cond_dim: int = 0, modulation: bool = False) -> nn.ModuleList:
    """Stages of ``widths`` (in the order run): per stage a transition (but the first), then its residual blocks.

    With ``modulation`` every block gets a :class:`~fashiongen.models.layers.Modulation` by a ``cond_dim`` code.
    """
    shapes = [branch_layers(block, w, group_width) for w in widths]
    scale = (len(widths) * blocks_per_stage) ** (-1 / (2 * len(shapes[0]) - 2))  # L^(-1/(2m-2))
    if modulation:
        mods = iter(modulations([shape[0][1] for shape in shapes for _ in range(blocks_per_stage)], cond_dim))
    layers: list[nn.Module] = []
    for stage, width in enumerate(widths):
        if stage:
            layers.append(Transition(widths[stage - 1], width, up=up))
        for _ in range(blocks_per_stage):
            layers.append(ResidualBlock(shapes[stage], scale, next(mods) if modulation else None))
    return nn.ModuleList(layers)


class GenerativeBasis(nn.Module):
    """Input vector (B, in) -> first map (B, C, base, base) by one linear layer (R3GAN's generative basis).

    Output unit ``(i * base + j) * C + c`` is channel ``c`` at ``(i, j)``: the map is a free channels-last view.
    """

    def __init__(self, in_features: int, channels: int, base: int):
        super().__init__()
        self.channels, self.base = channels, base
        self.linear = nn.Linear(in_features, channels * base * base)
        _he_init(self.linear, 1.0)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.linear(v).view(v.shape[0], self.base, self.base, self.channels).permute(0, 3, 1, 2)


class ResNetGenerator(nn.Module):
    """z (B, z_dim) and a condition code c (B, cond_dim) -> images (B, channels, size, size) in [-1, 1].

    ``block``: a name of :data:`BLOCKS`; ``group_width``: channels per group of
    a ``grouped`` block; ``blocks_per_stage``: residual blocks per resolution;
    ``stage_widths``: channels per stage, coarsest first (None: derived from
    ``width``). With ``modulation`` the code also sets a per-channel gain and
    bias of every block's expanded features (a ValueError without a condition).
    """

    def __init__(self, z_dim: int, width: int, channels: int, image_size: int, cond_dim: int = 0,
                 modulation: bool = False, *, stage_widths: list[int] | None = None, block: str = "depthwise",
                 group_width: int = 16, blocks_per_stage: int = 1):
        super().__init__()
        base, _ = resolution_plan(image_size)
        widths = stage_widths_for(image_size, width, stage_widths)
        self.z_dim = z_dim
        self.basis = GenerativeBasis(z_dim + cond_dim, widths[0], base)
        self.body = _body(widths, True, block, group_width, blocks_per_stage, cond_dim, modulation)
        self.to_image = _conv(widths[-1], channels, 1)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """``c``: the condition's code (B, cond_dim), empty for an unconditional generator."""
        x = self.basis(join_condition(z, c))
        for layer in self.body:
            x = layer(x, c)
        return torch.tanh(self.to_image(x))


class ResNetDiscriminator(nn.Module):
    """images (B, channels, size, size) in [-1, 1] -> one logit per image (B,).

    ``features`` maps images to the last stage's map flattened, (B, C·base·base)
    with ``C = feature_channels``; ``head`` is a linear layer on it. No
    normalisation and no dropout (R3GAN): ``norm`` must be ``"none"`` and
    ``dropout`` 0 or None, anything else is a ValueError.
    """

    def __init__(self, width: int, channels: int, image_size: int, norm: str = "none", dropout: float | None = None,
                 *, stage_widths: list[int] | None = None, block: str = "depthwise", group_width: int = 16,
                 blocks_per_stage: int = 1):
        super().__init__()
        if norm != "none":
            raise ValueError(f"the resnet discriminator has no normalisation layers (R3GAN); got norm {norm!r}: "
                             "set model.d_norm to auto or none")
        if dropout:
            raise ValueError(f"the resnet discriminator has no dropout (R3GAN); got {dropout}: set model.d_dropout: null")
        base, _ = resolution_plan(image_size)
        widths = stage_widths_for(image_size, width, stage_widths)[::-1]  # finest stage first
        self.features = _Features(_conv(channels, widths[0], 1), _body(widths, False, block, group_width,
                                                                         blocks_per_stage))
        self.feature_channels = widths[-1]
        self.head = nn.Linear(widths[-1] * base * base, 1)
        _he_init(self.head, 1.0)

    def forward(self, images: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        refuse_condition(c)
        return self.head(self.features(images)).squeeze(1)


class _Features(nn.Module):
    """The discriminator's trunk: 1×1 convolution from the image, the stages, flattened (B, C·base·base)."""

    def __init__(self, from_image: nn.Conv2d, body: nn.ModuleList):
        super().__init__()
        self.from_image = from_image
        self.body = body

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.from_image(images)
        for layer in self.body:
            x = layer(x)
        return x.flatten(1)
