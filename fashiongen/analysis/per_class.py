"""Which garments does the generator make, and which does it under-produce?

- **Class histogram**: the share of samples the evaluator puts in each class,
  beside the real test images' shares. Both sides are the evaluator's
  predictions (``real_predicted_share``), so its own mistakes (shirts read as
  T-shirts) cancel; the true label shares are listed too (``real_share``).
- **Under-produced classes**: those whose sample share is below
  ``underproduced_ratio`` × their real predicted share (``evaluate.underproduced_ratio``).
- ``class_share_distance``: the total variation distance between the two
  histograms, ½ Σ |sample − real| (0: same class mix, 1: disjoint).
- **Intra-class FID** (conditional models; Miyato & Koyama 2018,
  PyTorch-StudioGAN): FID between the samples conditioned on class c (asked
  for with a label, or varying a test image of class c) and the real test
  images of class c, in the scoring space; the mean over classes goes to
  ``metrics.json`` as ``intra_fid_mean``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from fashiongen.metrics.scores import frechet_distance

MIN_PER_CLASS = 2  # FID needs a covariance: at least two images per side


def class_shares(classes: np.ndarray, num_classes: int) -> np.ndarray:
    """Share (0-1, float64, length ``num_classes``) of each class among ``classes`` (int array)."""
    counts = np.bincount(np.asarray(classes, dtype=np.int64), minlength=num_classes)[:num_classes]
    return counts / max(1, len(classes))


def intra_class_fid(
    real_feats: torch.Tensor, real_classes: np.ndarray, fake_feats: torch.Tensor, fake_classes: np.ndarray,
    num_classes: int,
) -> list[float]:
    """FID per class between real and fake features of that class (NaN where a side has < 2 images)."""
    values = []
    for c in range(num_classes):
        real, fake = real_feats[real_classes == c], fake_feats[fake_classes == c]
        values.append(frechet_distance(real, fake) if min(len(real), len(fake)) >= MIN_PER_CLASS else math.nan)
    return values


def per_class_table(
    classes: list[str], sample_predicted: np.ndarray, real_predicted: np.ndarray, real_labels: np.ndarray,
    underproduced_ratio: float, intra_fid: list[float] | None = None,
) -> pd.DataFrame:
    """One row per class: shares (0-1), sample ÷ real ratio, under-produced flag, intra-class FID (NaN if not given)."""
    k = len(classes)
    table = pd.DataFrame({
        "class": classes,
        "real_share": class_shares(real_labels, k),
        "real_predicted_share": class_shares(real_predicted, k),
        "sample_share": class_shares(sample_predicted, k),
    })
    with np.errstate(divide="ignore", invalid="ignore"):
        table["ratio"] = table["sample_share"] / table["real_predicted_share"]
    table["underproduced"] = table["ratio"] < underproduced_ratio
    table["fid"] = intra_fid if intra_fid is not None else math.nan  # empty for unconditional models
    return table


def per_class_metrics(table: pd.DataFrame) -> dict[str, float | int | list[str]]:
    """The per-class table's summary for ``metrics.json``."""
    metrics: dict = {
        "class_share_distance": float(0.5 * (table["sample_share"] - table["real_predicted_share"]).abs().sum()),
        "underproduced_classes": int(table["underproduced"].sum()),
        "underproduced": [str(name) for name in table.loc[table["underproduced"], "class"]],
    }
    if table["fid"].notna().any():
        metrics["intra_fid_mean"] = float(table["fid"].mean(skipna=True))
    return metrics
