"""Layers shared by the networks."""

from __future__ import annotations

import torch
from torch import nn


class PatchConv2d(nn.Conv2d):
    """A Conv2d computed as unfold (im2col) + one matrix product.

    Same parameters and result as ``nn.Conv2d``. For a first layer on raw
    pixels the reduction (in_channels × kernel area: 9 to 48) is too short for
    oneDNN's direct convolution to run well on CPU; one matrix product over
    all output pixels is about 4× faster for the discriminator's first layer
    and made the evaluator's feature extraction 1.6× faster. The output is
    channels-last in memory, and a view: follow it with an out-of-place op,
    since an in-place one would make autograd rebuild the base tensor.

    Inputs of more than :attr:`max_unfold_pixels` (H × W) take ``nn.Conv2d``'s
    own path: the unfolded patches are (kernel area / stride²) × the input's
    size (4× for a 4×4, stride-2 RGB layer) and autograd keeps them, which at
    128 px and batch 128 was 250 MB of the train stage's peak (docs/benchmarks.md).
    """

    max_unfold_pixels = 64 * 64

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        if height * width > self.max_unfold_pixels:
            return super().forward(x)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        out_h, out_w = (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
        patches = nn.functional.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
        rows = patches.transpose(1, 2).reshape(batch * out_h * out_w, -1)  # one row per output pixel
        weight = self.weight.reshape(self.out_channels, -1).t()  # a copy only for a channels-last RGB weight
        y = torch.addmm(self.bias, rows, weight) if self.bias is not None else rows @ weight
        return y.view(batch, out_h, out_w, self.out_channels).permute(0, 3, 1, 2)


NORMS = ("batch", "layer", "none")


def make_norm(kind: str, channels: int) -> nn.Module:
    """``batch``: BatchNorm2d; ``layer``: GroupNorm with one group (per-sample LayerNorm over C, H, W); ``none``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}; choose one of {NORMS}")


def add_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al., 2018) on every convolution and linear weight of ``module``."""
    from torch.nn.utils.parametrizations import spectral_norm

    for child in list(module.modules()):
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            spectral_norm(child)
    return module


def join_condition(z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """A base generator's input: ``z`` (B, z_dim) ⊕ the condition's columns ``c`` (B, width; width 0 for none)."""
    return z if c is None or c.shape[-1] == 0 else torch.cat([z, c], dim=1)


def refuse_condition(c: torch.Tensor | None) -> None:
    """Base discriminators judge images alone: ``c`` must be empty (a conditional one is wrapped by its kind)."""
    if c is not None and c.numel():
        raise ValueError("an unconditional discriminator was given a condition; wrap it with its condition kind")


class Modulation(nn.Module):
    """Class-conditional per-channel scale and shift of a feature map (BigGAN's conditional BatchNorm, minus the norm).

    ``x * (1 + gamma(code)) + beta(code)`` with ``gamma``, ``beta`` linear maps
    of the condition's code (B, cond_dim) to one value per channel, as in
    Brock et al. (2019, "Large scale GAN training", the gains and biases of
    conditional BatchNorm) and FiLM (Perez et al., 2018). Both maps start at
    zero, so an untrained modulated network computes what the unmodulated one
    does. Placed after a normalisation it makes that normalisation
    class-conditional; in a normalisation-free network it modulates the
    features directly.

    Shapes: ``x`` (B, C, H, W) any float dtype, ``code`` (B, cond_dim); returns ``x``'s shape and dtype.
    """

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.affine = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(code.to(self.affine.weight.dtype)).to(x.dtype)[:, :, None, None].chunk(2, dim=1)
        return torch.addcmul(x + beta, x, gamma)
