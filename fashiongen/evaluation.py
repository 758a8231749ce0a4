"""The evaluate stage: score a trained generator against held-out real images.

N generated images are compared with N real test images in the evaluator's
feature space. Beside the model's scores stands the floor: the same metrics
between N *training* images and the same N test images, i.e. what a perfect
generator (one that samples the true distribution) would score with this
evaluator and this N. A reader sees how far from real the model is, and two
numbers measured with different evaluators or different N are never mixed up:
the file records both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fashiongen.atomic import write_json
from fashiongen.config import EvaluateConfig
from fashiongen.data.prepared import load_prepared
from fashiongen.device import resolve_device
from fashiongen.errors import ConfigError
from fashiongen.gan.artifact import load_generator
from fashiongen.gan.sampling import sample_uint8
from fashiongen.images import save_grid
from fashiongen.metrics.features import extract, load_evaluator
from fashiongen.metrics.scores import frechet_distance, inception_score, kernel_distance, precision_recall

log = logging.getLogger(__name__)

GRID_SAMPLES = 64


@dataclass(frozen=True)
class EvaluatePaths:
    prepared: Path
    evaluator: Path
    generator: Path
    metrics: Path
    samples: Path


def pick(n_total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct sorted indices out of ``n_total`` (all of them when ``n == n_total``)."""
    if n == n_total:
        return np.arange(n_total)
    return np.sort(rng.choice(n_total, size=n, replace=False))


def evaluate(cfg: EvaluateConfig, paths: EvaluatePaths, device_name: str = "auto") -> dict:
    """Sample, score against the test split and its real-vs-real floor, write the metrics."""
    device = resolve_device(device_name)
    data = load_prepared(paths.prepared)
    test, train = data.split("test"), data.split("train")
    n = cfg.num_samples
    if n > len(test) or n > len(train):
        raise ConfigError(
            f"evaluate.num_samples={n} but the prepared data has {len(test)} test and {len(train)} "
            "training images; lower evaluate.num_samples."
        )
    evaluator = load_evaluator(paths.evaluator, device)
    generator = load_generator(paths.generator, device)

    rng = np.random.default_rng(cfg.seed)
    real_test = test.images[pick(len(test), n, rng)]
    real_train = train.images[pick(len(train), n, rng)]
    fakes = sample_uint8(generator.module, n, generator.spec.z_dim, cfg.seed, cfg.batch_size, device)

    def features(images):
        return extract(evaluator.model, images, cfg.batch_size, device)

    test_feats, test_logits = features(real_test)
    train_feats, _ = features(real_train)
    fake_feats, fake_logits = features(fakes)

    model = score(test_feats, fake_feats, fake_logits, cfg)
    floor = score(test_feats, train_feats, test_logits, cfg)
    metrics = {
        **model,
        "fid_floor": floor["fid"],
        "kid_floor_mean": floor["kid_mean"],
        "precision_floor": floor["precision"],
        "recall_floor": floor["recall"],
        "is_real_mean": floor["is_mean"],
        "evaluator_accuracy": evaluator.accuracy,
        "features": evaluator.id,
        "num_samples": n,
        "kid_subset_size": min(cfg.kid_subset_size, n),
    }
    write_json(paths.metrics, metrics)
    save_grid(paths.samples, fakes[:GRID_SAMPLES])
    log.info("FID %.3f (floor %.3f), KID %.5f, IS %.3f", metrics["fid"], metrics["fid_floor"], metrics["kid_mean"], metrics["is_mean"])
    return metrics


def score(real_feats: torch.Tensor, feats: torch.Tensor, logits: torch.Tensor, cfg: EvaluateConfig) -> dict:
    """FID, KID, IS and precision/recall of one image set against the real features."""
    kid_mean, kid_std = kernel_distance(real_feats, feats, cfg.kid_subsets, cfg.kid_subset_size, cfg.seed)
    is_mean, is_std = inception_score(logits, cfg.is_splits, cfg.seed)
    precision, recall = precision_recall(real_feats, feats, cfg.pr_neighbours)
    return {
        "fid": frechet_distance(real_feats, feats),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "is_mean": is_mean,
        "is_std": is_std,
        "precision": precision,
        "recall": recall,
    }
