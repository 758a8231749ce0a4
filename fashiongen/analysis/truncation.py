"""The truncation trick: trading variety for quality by narrowing the noise.

FashionGen draws *truncated-normal* noise (BigGAN, Brock et al. 2019), with
ψ on StyleGAN's scale (Karras et al. 2019: ψ = 1 is no truncation, ψ → 0 is
the average sample). ψ is the share of the standard normal's mass that is
kept: every component of z is confined to [-t, t] with t = Φ⁻¹((1 + ψ) / 2)
(ψ = 0.8 → t ≈ 1.28, ψ = 0.6 → t ≈ 0.84).

Why truncated normal and not StyleGAN's shrinking towards the mean: StyleGAN
shrinks the *mapped* latent w, whose mean is a meaningful "average image". A
DCGAN has no w; shrinking its z (mean 0) to ψ·z pulls the norm of a
100-dimensional z from about 10 to 10ψ, off the shell the generator was
trained on. Truncation keeps every component inside the training
distribution's support.

How: each standard-normal component z is mapped through its own CDF,
u = Φ(z), squeezed to the central mass, u' = 1/2 + ψ (u − 1/2), and back,
z' = Φ⁻¹(u'). z' is exactly truncated-normal on [-t, t]; the map is
monotone and element-wise, so

- the noise is built on :func:`fashiongen.gan.sampling.noise`: row i of the
  truncated noise depends on the same things as row i of the noise (the seed
  and i), and the same seed gives the same samples at every ψ, drawn closer
  to the mean as ψ falls (what the report's truncation grid shows);
- ψ = 1 returns the noise unchanged, bit for bit.
"""

from __future__ import annotations

import torch

from fashiongen.errors import ConfigError
from fashiongen.gan.sampling import noise


def check_psi(psi: float) -> float:
    """``psi`` if it lies in (0, 1]; a :class:`ConfigError` otherwise."""
    if not 0.0 < psi <= 1.0:
        raise ConfigError(f"truncation ψ = {psi} is outside (0, 1]; use 1 for none, e.g. 0.7 for less variety.")
    return float(psi)


def truncation_threshold(psi: float) -> float:
    """t = Φ⁻¹((1 + ψ) / 2): the bound on |z| that keeps the share ψ of N(0, 1) (inf for ψ = 1)."""
    check_psi(psi)
    return float(torch.special.ndtri(torch.tensor((1.0 + psi) / 2.0, dtype=torch.float64)))


def truncate(z: torch.Tensor, psi: float) -> torch.Tensor:
    """Standard-normal noise ``z`` (any shape, float) mapped to N(0, 1) truncated to its central mass ``psi``.

    Same shape and dtype as ``z``; ``psi = 1`` returns ``z`` itself.
    """
    check_psi(psi)
    if psi == 1.0:
        return z
    u = torch.special.ndtr(z.double())
    return torch.special.ndtri(0.5 + psi * (u - 0.5)).to(z.dtype)


def truncated_noise(n: int, z_dim: int, seed: int, psi: float = 1.0) -> torch.Tensor:
    """``n`` noise vectors (n × z_dim, float32) from :func:`noise` (``seed``), truncated to mass ``psi``."""
    return truncate(noise(n, z_dim, seed), psi)
