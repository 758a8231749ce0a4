"""Drawing images from a generator: seeded, batched, under inference mode.

The noise is drawn on the CPU from a private counter-based stream keyed by
``seed`` and then moved to the device, so the same seed gives the same noise on
any machine, image ``i`` of a seed is the same whatever the number of images
drawn, and the global RNG of a training run is never disturbed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from fashiongen.data.batches import RowsOut
from fashiongen.images import to_uint8


_UNIT = 2.0**-53  # 53 random bits -> a double in (0, 1)


def noise(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """``n`` standard-normal noise vectors (float32, n×z_dim, on the CPU); row ``i`` depends only on ``(seed, i, z_dim)``.

    So ``noise(10, z, s)`` is the first 10 rows of ``noise(64, z, s)``, and any
    image of a grid can be redrawn alone from its seed and index.

    How: numpy's Philox-4x64 (Salmon et al. 2011, "Parallel random numbers: as
    easy as 1, 2, 3"), a counter-based generator keyed by
    ``numpy.random.SeedSequence(seed)``, yields 64-bit words in a fixed order;
    row ``i`` takes words ``i*z_dim .. (i+1)*z_dim - 1``, each turned into one
    normal value by the inverse normal CDF (``torch.special.ndtri`` of the word's
    top 53 bits as a uniform in (0, 1), in float64). One word per value, never a
    rejection, is what pins each row to its index; the whole draw is vectorised
    (10,000 × 128 values in about 0.03 s on one core).

    Why not ``torch.randn(n, z_dim, generator=...)``: its vectorised CPU normal
    fill redraws its last 16 values when ``n * z_dim`` is not a multiple of 16, so
    the last row changed with ``n``; and torch's CPU generator (mt19937) keeps
    only the low 32 bits of a seed, so seeds ``s`` and ``s + 2**32`` drew the same
    images. Here every bit of the seed counts.

    Args:
        n: number of vectors, >= 0. z_dim: their size, >= 1.
        seed: any integer in [0, 2**64) (larger non-negative integers work too).
    Raises:
        ValueError: a negative ``seed``, ``n`` or ``z_dim``.
    """
    if n < 0 or z_dim < 1:
        raise ValueError(f"noise needs n >= 0 and z_dim >= 1, got n={n}, z_dim={z_dim}")
    words = np.random.Philox(np.random.SeedSequence(seed)).random_raw(n * z_dim)
    uniform = ((words >> np.uint64(11)).astype(np.float64) + 0.5) * _UNIT
    return torch.special.ndtri(torch.from_numpy(uniform)).to(torch.float32).reshape(n, z_dim)


def generate_batches(
    generator: nn.Module, z: torch.Tensor, batch_size: int, device: torch.device | str, cond: torch.Tensor,
) -> Iterator[torch.Tensor]:
    """``G(z, c)`` as uint8 batches (``batch_size`` rows × C×H×W, on the CPU), in eval mode, one batch made at a time.

    ``z`` is N×z_dim noise, ``cond`` the N conditions (N×0 for an unconditional
    generator: :mod:`fashiongen.gan.conditions`). Batch ``b`` holds rows
    ``b·batch_size ..``; a row depends only on its own noise and condition.
    """
    was_training = generator.training
    generator.eval()
    try:
        for i in range(0, len(z), batch_size):
            rows = slice(i, i + batch_size)
            with torch.inference_mode():
                batch = to_uint8(generator(z[rows].to(device), cond[rows].to(device))).cpu()
            yield batch
    finally:
        generator.train(was_training)


def generate_uint8(
    generator: nn.Module, z: torch.Tensor, batch_size: int, device: torch.device | str, cond: torch.Tensor,
) -> torch.Tensor:
    """``G(z, c)`` as one uint8 N×C×H×W tensor on the CPU (:func:`generate_batches`, concatenated).

    For a few images (grids, walks); to measure many, :func:`sample_features` never holds them all.
    """
    return torch.cat(list(generate_batches(generator, z, batch_size, device, cond)))


def sample_uint8(
    generator: nn.Module, n: int, z_dim: int, seed: int, batch_size: int = 1000, device: torch.device | str = "cpu",
    *, cond: torch.Tensor,
) -> torch.Tensor:
    """``n`` images from fresh seeded noise and the given ``n`` conditions."""
    return generate_uint8(generator, noise(n, z_dim, seed), batch_size, device, cond)


Extractor = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def sample_features(
    generator: nn.Module, z: torch.Tensor, cond: torch.Tensor, batch_size: int, device: torch.device | str,
    extractors: Sequence[Extractor], keep: int = 0,
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """Features of ``G(z, c)`` in every feature space of ``extractors``, one batch of images made and measured at a time.

    Each extractor maps a uint8 batch (B×C×H×W) to (features B×D, logits B×K);
    their outputs are concatenated over the N rows of ``z``, in order. Memory:
    one batch of images, never N (10,000 RGB images at 128 px are 0.5 GB as
    uint8, 2 GB as float). Returns ([(features, logits) per extractor], the
    first ``keep`` images, uint8, for a grid).
    """
    outputs = [RowsOut(len(z)) for _ in extractors]  # one allocation per output (see RowsOut)
    kept = []
    for batch in generate_batches(generator, z, batch_size, device, cond):
        for out, extractor in zip(outputs, extractors):
            out.add(*extractor(batch))
        if sum(len(k) for k in kept) < keep:
            kept.append(batch[: keep - sum(len(k) for k in kept)])
    results = [tuple(out.result(2)) for out in outputs]
    return results, (torch.cat(kept) if kept else torch.empty(0, dtype=torch.uint8))


def redraw(
    generator: nn.Module, z: torch.Tensor, cond: torch.Tensor, batch_size: int, device: torch.device | str,
    rows: Sequence[int],
) -> torch.Tensor:
    """Rows ``rows`` of ``generate_uint8(generator, z, batch_size, device, cond)``, uint8, in the order given.

    Only the batches holding them are made again, with the same batch
    boundaries, so each row is bit for bit the one measured before.
    """
    made = {}
    for start in sorted({int(row) // batch_size * batch_size for row in rows}):
        span = slice(start, start + batch_size)
        made[start] = generate_uint8(generator, z[span], batch_size, device, cond[span])
    return torch.stack([made[int(row) // batch_size * batch_size][int(row) % batch_size] for row in rows])
