"""The 'upsample' family: the generator of the seed's TensorFlow report and its dropout discriminator.

Generator (the report's ``build_generator``, in PyTorch and for any supported
size): a dense projection to a ``base×base`` map with LeakyReLU, then per
doubling a nearest-neighbour ×2 upsampling and a 5×5 convolution, then two 4×4
refinement convolutions at full resolution, then a 4×4 convolution to the
image channels. No BatchNorm. The output is tanh, not the report's sigmoid,
because FashionGen's images live in [-1, 1]. Channels halve at each doubling
from ``width × 2^(doublings-1)`` (the report's constant 128 would cost ~30×
the DCGAN generator on CPU at 28 px).

Discriminator (the report's ``build_discriminator``): 5×5 convolutions with
LeakyReLU and dropout 0.4 after each, then dropout and a linear layer. The
report's unpadded convolutions shrink the image by 4 px per layer, which does
not scale to 64 or 128 px; here the first convolutions halve the resolution
(stride 2) down to the base map and one more 5×5 convolution follows.
"""

from __future__ import annotations

import torch
from torch import nn

from fashiongen.models.dcgan import init_dcgan_weights, modulations, resolution_plan
from fashiongen.models.layers import PatchConv2d, join_condition, make_norm, refuse_condition

REPORT_DROPOUT = 0.4


def _same_4x4(in_ch: int, out_ch: int) -> nn.Sequential:
    """A 4×4 convolution with TensorFlow's 'same' padding: 1 pixel before, 2 after."""
    return nn.Sequential(nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(in_ch, out_ch, 4))


class UpsampleGenerator(nn.Module):
    """z (B, z_dim) -> images (B, channels, size, size) in [-1, 1]."""

    def __init__(self, z_dim: int, width: int, channels: int, image_size: int, cond_dim: int = 0,
                 modulation: bool = False):
        super().__init__()
        base, doublings = resolution_plan(image_size)
        ch = width * 2 ** (doublings - 1)
        self.z_dim, self.channels, self.base, self.doublings = z_dim, ch, base, doublings
        self.project = nn.Linear(z_dim + cond_dim, ch * base * base)
        blocks: list[nn.Module] = []
        widths = []
        for _ in range(doublings):
            out = max(width, ch // 2)
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, out, 5, padding=2), nn.LeakyReLU(0.2, inplace=True)]
            ch = out
            widths.append(ch)
        for _ in range(2):
            blocks += [_same_4x4(ch, ch), nn.LeakyReLU(0.2, inplace=True)]
        blocks += [_same_4x4(ch, channels), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)
        self.apply(init_dcgan_weights)
        # with modulation: a class-conditional gain and bias after each doubling's convolution
        self.modulations = modulations(widths, cond_dim) if modulation else None

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """``c``: the condition's code (B, cond_dim), empty for an unconditional generator."""
        z = join_condition(z, c)
        x = nn.functional.leaky_relu(self.project(z), 0.2)
        x = x.view(z.shape[0], self.channels, self.base, self.base)
        if self.modulations is None:
            return self.blocks(x)
        for index, modulate in enumerate(self.modulations):
            upsample, conv, act = self.blocks[3 * index : 3 * index + 3]
            x = act(modulate(conv(upsample(x)), c))
        return self.blocks[3 * self.doublings :](x)


class DropoutDiscriminator(nn.Module):
    """images -> one logit per image; 5×5 convolutions, LeakyReLU, dropout after each."""

    def __init__(self, width: int, channels: int, image_size: int, norm: str = "none", dropout: float = REPORT_DROPOUT):
        super().__init__()
        base, halvings = resolution_plan(image_size)
        ch, out = channels, max(8, width // 2)
        layers: list[nn.Module] = []
        for index in range(halvings + 1):
            stride = 2 if index < halvings else 1
            conv = PatchConv2d if index == 0 else nn.Conv2d
            layers.append(conv(ch, out, 5, stride, 2, bias=norm == "none"))
            if index > 0 and norm != "none":
                layers.append(make_norm(norm, out))
            layers += [nn.LeakyReLU(0.2, inplace=index > 0), nn.Dropout(dropout)]
            ch, out = out, out * 2
        self.features = nn.Sequential(*layers, nn.Flatten(), nn.Dropout(dropout))
        self.feature_channels = ch  # channels of the map that ``features`` flattens (for projection)
        self.head = nn.Linear(ch * base * base, 1)
        self.apply(init_dcgan_weights)

    def forward(self, images: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        refuse_condition(c)
        return self.head(self.features(images)).squeeze(1)
