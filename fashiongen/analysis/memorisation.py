"""Does the generator copy its training set? Nearest training images and the copy rate.

Distances are Euclidean, between the evaluator's penultimate features (the
ruler of FID and precision/recall), searched exhaustively in chunks of
queries (``torch.cdist`` on one chunk × the reference set at a time: memory
stays ``chunk × M``, never ``N × M``), as in PyTorch-StudioGAN's k-NN
analysis.

**Copy rate.** Let d(x) be the distance from an image x to its nearest
training image. The threshold τ is the ``percentile``-th percentile of d over
the real held-out test images that are scored (test images were never
trained on; Fashion-MNIST's test split even holds a few near-duplicates of
training images, which the low percentile accounts for). The copy rate is
the share of samples with d(sample) < τ: a sample closer to a training image
than all but ``percentile`` % of real unseen images are. A generator that
samples the true distribution scores about ``percentile`` / 100 (reported as
``copy_rate_floor``: the same share over the real test images); one
that returns training images scores 1.

**MiFID** (memorisation-informed FID, Bai et al. 2021, the Kaggle "Generative
Dog Images" metric, as in torchmetrics'
``MemorizationInformedFrechetInceptionDistance``): FID between the training
set and the samples, divided by the memorisation distance m (the mean, over
training images, of the smallest cosine distance 1 − |cos| to a sample) when
m < ε = 0.1, else left as it is. torchmetrics holds the whole real × fake
float64 matrix (60,000 × 10,000: 4.8 GB), so :func:`mifid` computes the same
formula over chunks; ``tests/test_memorisation.py`` checks it equals
torchmetrics' value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from fashiongen.data.batches import Images
from fashiongen.metrics.scores import frechet_distance

CHUNK = 256  # queries per distance block: 256 × 60,000 float32 = 61 MB
MIFID_EPS = 0.1  # torchmetrics' (and the Kaggle competition's) cosine_distance_eps


def nearest_neighbours(
    queries: torch.Tensor, reference: torch.Tensor, k: int = 1, chunk: int = CHUNK
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest rows of ``reference`` (M × D) to each row of ``queries`` (N × D), Euclidean.

    Returns (distances N × k float32, ascending; indices N × k int64 into ``reference``).
    Memory: one ``chunk × M`` distance block at a time.
    """
    if not 1 <= k <= len(reference):
        raise ValueError(f"k = {k} needs 1 <= k <= {len(reference)} reference points")
    reference = reference.float()
    distances, indices = [], []
    for start in range(0, len(queries), chunk):
        block = torch.cdist(queries[start : start + chunk].float(), reference)
        values, index = block.topk(k, dim=1, largest=False)
        distances.append(values)
        indices.append(index)
    return torch.cat(distances), torch.cat(indices)


def copy_threshold(real_distances: torch.Tensor, percentile: float) -> float:
    """τ: the ``percentile``-th percentile (0-100, linear interpolation) of real images' nearest-training distances."""
    return float(np.percentile(real_distances.double().numpy(), percentile))


def copy_rate(distances: torch.Tensor, threshold: float) -> float:
    """Share of images whose nearest-training distance is below ``threshold`` (0-1)."""
    return float((distances < threshold).double().mean())


def memorisation_distance(real: torch.Tensor, fake: torch.Tensor, chunk: int = 4 * CHUNK) -> float:
    """MiFID's m: mean over ``real`` rows of the smallest 1 − |cos| to a ``fake`` row (zero-sum rows dropped, as torchmetrics).

    The products are float32 (torchmetrics: float64; the same value to about 1e-6 absolute), the mean float64.
    """
    real = real[real.double().sum(dim=1) != 0].float()
    fake = fake[fake.double().sum(dim=1) != 0].float()
    real = real / real.norm(dim=1, keepdim=True)
    fake_t = (fake / fake.norm(dim=1, keepdim=True)).T.contiguous()
    nearest = [(real[start : start + chunk] @ fake_t).abs_().amax(dim=1) for start in range(0, len(real), chunk)]
    return float((1.0 - torch.cat(nearest).double()).mean())


def mifid(train: torch.Tensor, fake: torch.Tensor, eps: float = MIFID_EPS) -> float:
    """Memorisation-informed FID of ``fake`` against ``train`` features (see the module doc); 0 when FID is ~0."""
    fid = frechet_distance(train, fake)
    if fid <= 1e-8:
        return 0.0
    distance = memorisation_distance(train, fake)
    return fid / (distance + 10e-15) if distance < eps else fid


@dataclass(frozen=True)
class Memorisation:
    """Result of :func:`memorisation` (distances in feature units)."""

    copy_rate: float
    copy_rate_floor: float
    copy_threshold: float
    neighbour_distances: torch.Tensor  # N × k, ascending, per sample
    neighbour_indices: torch.Tensor  # N × k, into the training split

    def metrics(self) -> dict[str, float]:
        return {
            "copy_rate": self.copy_rate,
            "copy_rate_floor": self.copy_rate_floor,
            "copy_threshold": self.copy_threshold,
            "nn_distance_median": float(self.neighbour_distances[:, 0].median()),
        }


def memorisation(
    fake_feats: torch.Tensor, real_feats: torch.Tensor, train_feats: torch.Tensor, percentile: float, k: int = 3
) -> Memorisation:
    """Copy rate of samples (``fake_feats``) against the threshold set by real held-out images (``real_feats``).

    ``train_feats`` are the features of the training images a copy would come
    from; all three are N×D float tensors in the same space.
    """
    real_distances, _ = nearest_neighbours(real_feats, train_feats, 1)
    fake_distances, fake_index = nearest_neighbours(fake_feats, train_feats, k)
    threshold = copy_threshold(real_distances[:, 0], percentile)
    return Memorisation(
        copy_rate=copy_rate(fake_distances[:, 0], threshold),
        copy_rate_floor=copy_rate(real_distances[:, 0], threshold),
        copy_threshold=threshold,
        neighbour_distances=fake_distances,
        neighbour_indices=fake_index,
    )


def neighbour_rows(samples: Callable[[list[int]], torch.Tensor], train_images: Images, result: Memorisation,
                   rows: int = 8) -> torch.Tensor:
    """The ``rows`` samples nearest to a training image, each followed by its k nearest training images.

    ``samples(indices)`` gives those samples (uint8, in the order asked; the
    evaluate stage makes them again from their noise rather than keeping
    every sample); ``train_images`` is the training split, read by index.
    uint8 ((rows × (1 + k)) × C × H × W), row-major: a grid with ``1 + k`` columns.
    """
    order = torch.argsort(result.neighbour_distances[:, 0])[:rows].tolist()
    tiles = []
    for i, sample in zip(order, samples(order)):
        tiles.append(sample)
        tiles.extend(train_images.take(result.neighbour_indices[i]).cpu())
    return torch.stack(tiles)
