"""Walks through a generator's input space (PyTorch-StudioGAN's interpolation analysis).

- Noise: spherical linear interpolation (slerp, Shoemake 1985; White 2016,
  "Sampling generative networks") between two noise vectors. Unlike a
  straight line, whose midpoint has norm ≈ 0.7 × that of a Gaussian z in
  high dimensions, slerp stays on the shell where the generator's training
  noise lives.
- Condition: the class embedding (label models) or the encoding (encoding
  models) is interpolated linearly at fixed noise: from class A to class B,
  or from the encoding of one photo to another's.

Step 0 is exactly the input of the first endpoint and the last step exactly
that of the second, so the strip's ends are the endpoints' own samples.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from fashiongen.atomic import atomic_write
from fashiongen.errors import ConfigError
from fashiongen.gan.sampling import noise
from fashiongen.generation import generation_conditions, walk_end
from fashiongen.images import to_uint8

SLERP_PARALLEL = 1e-6


def slerp(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` points (steps × D) on the great circle from ``a`` to ``b`` (D each), ends included.

    The norm stays close to the endpoints' (equal to it when theirs are equal);
    nearly parallel vectors fall back to a straight line.
    """
    t = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)[:, None]
    a64, b64 = a.double(), b.double()
    cos = (a64 / a64.norm()) @ (b64 / b64.norm())
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if torch.sin(omega).abs() < SLERP_PARALLEL:
        return lerp(a, b, steps)
    walk = (torch.sin((1.0 - t) * omega) * a64 + torch.sin(t * omega) * b64) / torch.sin(omega)
    return walk.to(a.dtype)


def lerp(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` evenly spaced points (steps × D) on the segment from ``a`` to ``b``, ends included."""
    t = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)[:, None]
    walk = (1.0 - t) * a.double() + t * b.double()
    walk[0], walk[-1] = a.double(), b.double()
    return walk.to(a.dtype)


@torch.no_grad()
def condition_code(generator: torch.nn.Module, cond: torch.Tensor) -> torch.Tensor:
    """The rows a generator takes beside the noise for conditions ``cond`` (B × width; B × 0 unconditional)."""
    return generator.code(cond) if hasattr(generator, "code") else cond


def from_code(generator: torch.nn.Module, z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """``G`` on noise and condition rows (see :func:`condition_code`)."""
    return generator.from_code(z, code) if hasattr(generator, "from_code") else generator(z, code)


def walk_inputs(
    z_dim: int, steps: int, seed: int, start: torch.Tensor, end: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise and condition rows of a walk: (steps × z_dim, steps × width).

    ``start``/``end`` are condition rows (1 × width, :func:`condition_code`;
    1 × 0 for an unconditional generator). With ``end``, the noise is fixed
    (row 0 of ``noise(·, seed)``) and the condition moves from ``start`` to
    ``end``; without, the noise slerps from row 0 to row 1 at ``start``.
    """
    z = noise(2, z_dim, seed)
    if end is not None:
        return z[:1].expand(steps, -1).clone(), lerp(start[0], end[0], steps)
    return slerp(z[0], z[1], steps), start.expand(steps, -1).clone()


@torch.inference_mode()
def render_walk(generator: torch.nn.Module, z: torch.Tensor, codes: torch.Tensor, device="cpu") -> torch.Tensor:
    """The images of a walk, uint8 (steps × C × H × W) on the CPU, generator in eval mode."""
    generator.eval()
    return to_uint8(from_code(generator, z.to(device), codes.to(device))).cpu()


def save_gif(path: Path | str, frames: torch.Tensor, frame_ms: int = 150) -> None:
    """Write uint8 frames (S × C × H × W) as a looping animated GIF (Pillow), atomically."""
    arrays = frames.permute(0, 2, 3, 1).numpy()
    images = [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arrays]
    with atomic_write(path) as handle:
        images[0].save(handle, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)


def walk(
    loaded, steps: int, seed: int, label: str | None = None, like: Path | None = None, to: str | None = None,
    encoder_path: Path = Path("models/encoder.pt"), device="cpu",
) -> torch.Tensor:
    """``fashiongen interpolate``: the images (uint8, steps × C × H × W) of one walk.

    Without ``to``: a noise walk (seed's rows 0 → 1) at the condition of
    ``label``/``like`` (if the generator takes one). With ``to`` (a class for
    label models, an image path for encoding models): at fixed noise, from the
    condition of ``label``/``like`` to that of ``to``. Raises
    :class:`~fashiongen.errors.ConfigError` when the arguments do not fit the
    generator's condition.
    """
    if steps < 2:
        raise ConfigError(f"--n-steps {steps}: a walk needs at least 2 steps (its two ends).")
    ends = None if to is None else walk_end(loaded.spec.condition, to, label is not None or like is not None)
    start = condition_code(loaded.module, generation_conditions(loaded, 1, label, like, encoder_path, device).to(device))
    end = None
    if ends is not None:
        to_label, to_like = ends
        end = condition_code(loaded.module, generation_conditions(loaded, 1, to_label, to_like, encoder_path, device).to(device))
    z, codes = walk_inputs(loaded.spec.z_dim, steps, seed, start.cpu(), None if end is None else end.cpu())
    return render_walk(loaded.module, z, codes, device)
