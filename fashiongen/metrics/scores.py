"""Sample-quality scores on precomputed evaluator features.

FID, KID and IS are torchmetrics' implementations. The evaluator runs once per
image set (:func:`fashiongen.metrics.features.extract`) and its outputs are
handed to the metrics through :class:`Precomputed`, a pass-through "feature
extractor": one forward pass then serves FID, KID, IS, precision/recall and
the real-vs-real floor, instead of one pass per metric.

Precision and recall (Kynkäänniemi et al., 2019) are not in torchmetrics and
are written here: a sample is "precise" if it falls inside the k-NN ball of
some real image, a real image is "recalled" if it falls inside the k-NN ball
of some sample.

Metrics that subsample (KID subsets, IS splits) draw from a seeded, private
RNG, so the same features always give the same numbers.

The set metrics of :data:`fashiongen.metrics.table.METRICS` are measured by
the ``*_score`` functions here, each named in the table; :func:`measure_set`
runs them all.
"""

from __future__ import annotations

import torch
from torch import nn

from fashiongen.config import EvaluateConfig
from fashiongen.metrics.table import SET_SCORES

_DISTANCE_CHUNK = 2048


class Precomputed(nn.Module):
    """Identity 'feature extractor' for features computed beforehand."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between two feature sets (torchmetrics, float64 statistics)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=Precomputed(real.shape[1]))
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def kernel_distance(
    real: torch.Tensor, fake: torch.Tensor, subsets: int, subset_size: int, seed: int
) -> tuple[float, float]:
    """KID mean and std over ``subsets`` random subsets (torchmetrics, polynomial kernel)."""
    import warnings

    from torchmetrics.image.kid import KernelInceptionDistance

    subset_size = min(subset_size, len(real), len(fake))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(feature=Precomputed(real.shape[1]), subsets=subsets, subset_size=subset_size)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def inception_score(logits: torch.Tensor, splits: int, seed: int) -> tuple[float, float]:
    """IS mean and std over ``splits`` splits of the evaluator's logits (torchmetrics)."""
    import warnings

    from torchmetrics.image.inception import InceptionScore

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = InceptionScore(feature=Precomputed(logits.shape[1]), splits=min(splits, len(logits)))
    metric.update(logits.double())
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def knn_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of ``features`` to its k-th nearest other row (float32)."""
    return _knn_radii(features.float(), k)


def _knn_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point in the same set."""
    radii = []
    for start in range(0, len(features), _DISTANCE_CHUNK):
        distances = torch.cdist(features[start : start + _DISTANCE_CHUNK], features)
        # the smallest distance is the point to itself (0): the k-th neighbour is at k+1
        radii.append(distances.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def _inside_any_ball(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    inside = []
    for start in range(0, len(points), _DISTANCE_CHUNK):
        distances = torch.cdist(points[start : start + _DISTANCE_CHUNK], centres)
        inside.append((distances <= radii.unsqueeze(0)).any(dim=1))
    return torch.cat(inside)


def precision_recall(
    real: torch.Tensor, fake: torch.Tensor, k: int, real_radii: torch.Tensor | None = None
) -> tuple[float, float]:
    """Improved precision and recall with k-NN balls in feature space.

    ``real_radii`` (``knn_radii(real, k)``) may be passed when several sample
    sets are scored against the same real set.
    """
    real, fake = real.float(), fake.float()
    real_radii = _knn_radii(real, k) if real_radii is None else real_radii
    precision = _inside_any_ball(fake, real, real_radii).float().mean()
    recall = _inside_any_ball(real, fake, _knn_radii(fake, k)).float().mean()
    return float(precision), float(recall)


def fid_score(real: torch.Tensor, fake: torch.Tensor, logits: torch.Tensor, cfg: EvaluateConfig) -> dict[str, float]:
    """``fid``: Fréchet distance of the two feature sets (Heusel et al. 2017; torchmetrics)."""
    return {"fid": frechet_distance(real, fake)}


def kid_score(real: torch.Tensor, fake: torch.Tensor, logits: torch.Tensor, cfg: EvaluateConfig) -> dict[str, float]:
    """``kid_mean``, ``kid_std``: KID over ``evaluate.kid_subsets`` subsets (Bińkowski et al. 2018; torchmetrics)."""
    mean, std = kernel_distance(real, fake, cfg.kid_subsets, cfg.kid_subset_size, cfg.seed)
    return {"kid_mean": mean, "kid_std": std}


def is_score(real: torch.Tensor, fake: torch.Tensor, logits: torch.Tensor, cfg: EvaluateConfig) -> dict[str, float]:
    """``is_mean``, ``is_std``: Inception Score of the set's logits over ``evaluate.is_splits`` splits (torchmetrics)."""
    mean, std = inception_score(logits, cfg.is_splits, cfg.seed)
    return {"is_mean": mean, "is_std": std}


def precision_recall_score(real: torch.Tensor, fake: torch.Tensor, logits: torch.Tensor,
                           cfg: EvaluateConfig) -> dict[str, float]:
    """``precision``, ``recall`` with ``evaluate.pr_neighbours``-NN balls, on sets of equal size (k-NN radii
    shrink as a set grows): the first ``len(real)`` of ``fake``."""
    precision, recall = precision_recall(real, fake[: len(real)], cfg.pr_neighbours)
    return {"precision": precision, "recall": recall}


def measure_set(real: torch.Tensor, fake: torch.Tensor, logits: torch.Tensor, cfg: EvaluateConfig) -> dict[str, float]:
    """Every set metric of the table for one image set against the real reference.

    ``real``: float32 R × D reference features; ``fake``: float32 N × D features of the set (N ≥ R); ``logits``:
    its N × classes logits (for IS). Returns ``{"fid": ..., "kid_mean": ..., "kid_std": ..., ...}``.
    """
    measured: dict[str, float] = {}
    for name in SET_SCORES:
        measured.update(globals()[name](real, fake, logits, cfg))
    return measured
