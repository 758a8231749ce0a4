"""Pixel clusters of the training images: the label-free codes of ``model.condition: cluster``.

A cluster-conditioned GAN trains like a class-conditional one, with k-means
clusters of the training images in place of class labels, and samples like an
unconditional one, drawing the cluster from the training share of each
(Liu et al. 2020, "Diverse Image Generation via Self-Conditioned GANs";
Sage et al. 2018, "Logo Synthesis and Manipulation with Clustered GANs").
The clusters need no labels, so they work on an unlabelled folder of photos.

The clustering is scikit-learn's :class:`~sklearn.cluster.KMeans` (Lloyd's
algorithm, k-means++ seeding: Arthur & Vassilvitskii 2007) on the images'
pixels area-averaged to at most ``FEATURE_SIDE`` px per side (so a 128 px
photo costs what a 16 px one does), values in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MIN_CLUSTER_IMAGES = 20  # training images per cluster, on average, at the least (fewer clusters on small data)
FEATURE_SIDE = 16  # px per side of the pixels the clustering sees (area-averaged); smaller images as they are
READ_ROWS = 4096  # images read and pooled at a time


def cluster_count(clusters: int, images: int) -> int:
    """The clusters a split of ``images`` gets: ``clusters`` (``model.clusters``), fewer when that would leave
    under ``MIN_CLUSTER_IMAGES`` images per cluster on average, and at least 1."""
    return max(1, min(clusters, images // MIN_CLUSTER_IMAGES))


def pixel_features(take, count: int, side: int = FEATURE_SIDE) -> np.ndarray:
    """The clustering's view of ``count`` images: float32 count × (C·s·s), values in [0, 1].

    ``take(index)`` returns the uint8 C×H×W rows at ``index`` (e.g. ``ImageSource.take``);
    images are read ``READ_ROWS`` at a time, so a split read per batch is never held whole.
    ``s`` is min(H, ``side``); larger images are area-averaged (``adaptive_avg_pool2d``).
    """
    chunks = []
    for start in range(0, count, READ_ROWS):
        rows = take(torch.arange(start, min(start + READ_ROWS, count))).to("cpu", torch.float32) / 255.0
        if rows.shape[-1] > side or rows.shape[-2] > side:
            rows = F.adaptive_avg_pool2d(rows, side)
        chunks.append(rows.flatten(1).numpy())
    return np.concatenate(chunks) if chunks else np.empty((0, 0), np.float32)


def pixel_clusters(take, count: int, k: int, seed: int) -> np.ndarray:
    """The k-means cluster (int64 in [0, k)) of each of ``count`` images, in order.

    Deterministic for the same images, ``k`` and ``seed``. Raises ValueError when
    ``k`` exceeds ``count`` (scikit-learn's message names both).
    """
    from sklearn.cluster import KMeans

    features = pixel_features(take, count)
    kmeans = KMeans(n_clusters=k, n_init=1, random_state=seed)
    return kmeans.fit_predict(features).astype(np.int64)


def cluster_shares(assignments: np.ndarray, k: int) -> torch.Tensor:
    """The share of the images in each of the ``k`` clusters: float32 (k,), summing to 1."""
    counts = np.bincount(assignments, minlength=k).astype(np.float64)
    return torch.as_tensor(counts / counts.sum(), dtype=torch.float32)
