"""Scoring a generator against real images (what the evaluate stage, :mod:`fashiongen.pipeline.evaluate`, runs).

N generated images are compared with real images in the evaluator's feature
space: N held-out test images, or, when a split holds fewer than N (a small
photo folder), up to N images of the whole dataset (the real-set rule,
:mod:`fashiongen.real_set`). Beside the model's scores stands the floor: the
same metrics between two sets of real images (N training images vs the N test
images; or one half of the real set vs the other), i.e. what a perfect
generator (one that samples the true distribution) would score with this
evaluator and these sizes. A reader sees how far from real the model is, and
two numbers measured with different evaluators, N or real sets are never mixed
up: the file records them (``features``, ``num_samples``, ``real_set``,
``real_count``, ``floor_count``).

A conditional generator is scored on the conditions of the real images it is
compared with: their labels (so classes come in their real proportions) or
their encodings. Two more metrics then say whether the condition is obeyed and
whether the noise still matters:

- ``class_consistency``: the share of samples the evaluator puts in the class
  asked for (label) or in the class of the source image (encoding);
- ``diversity``: the mean pairwise feature distance of samples sharing one
  condition, divided by that of real images of the condition's class.
  Near 0 the generator ignores the noise and copies; near 1 it varies as much
  as real images of the class do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fashiongen.analysis.inspection import (
    Scored,  # memorisation, per class, truncation, walks
)
from fashiongen.config import EvaluateConfig
from fashiongen.data.batches import Images, Subset, bounded_batch
from fashiongen.data.prepared import PreparedData
from fashiongen.gan.artifact import GeneratorSpec
from fashiongen.gan.conditions import condition_kind
from fashiongen.gan.sampling import noise, sample_features
from fashiongen.metrics.features import LoadedEvaluator, extract
from fashiongen.metrics.inception import InceptionFeatures, resolve_weights
from fashiongen.metrics.real_draw import SPLITS, draw_real
from fashiongen.metrics.scores import measure_set
from fashiongen.metrics.table import floors
from fashiongen.real_set import plan_real_set

log = logging.getLogger(__name__)

GRID_SAMPLES = 64


@dataclass(frozen=True)
class FeatureSpace:
    """What FID, KID, IS and precision/recall are measured in: the ruler's id and recipe, and its extractor.

    ``extract`` maps uint8 images to (features, logits). The ids go into the
    metrics file so that numbers from different rulers are never compared.
    """

    id: str
    recipe: str
    extract: Callable[[np.ndarray | torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def inception_space(cfg: EvaluateConfig, device) -> FeatureSpace:
    """The FID Inception-V3 (``evaluate.features: inception``); a clear error when its weights are missing."""
    inception = InceptionFeatures(resolve_weights(cfg.inception_weights), device)
    return FeatureSpace(inception.id, inception.recipe, lambda images: inception.extract(images, cfg.batch_size))


def test_conditions(spec: GeneratorSpec, data: PreparedData, encodings_dir: Path) -> torch.Tensor:
    """The condition of every test image for ``spec``'s generator (N×0 for an unconditional one)."""
    return split_conditions(spec, data, encodings_dir, splits=("test",))["test"]


def split_conditions(
    spec: GeneratorSpec, data: PreparedData, encodings_dir: Path, splits: tuple[str, ...] = SPLITS
) -> dict[str, torch.Tensor]:
    """The condition of every image of each split for ``spec``'s generator (N×0 rows for an unconditional one)."""
    kind = condition_kind(spec.condition)
    return {
        split: kind.values(data.split(split).labels, data.num_classes, encodings_dir, split, encoder_id=spec.encoder)
        for split in splits
    }


def score_generator(
    module: torch.nn.Module, z_dim: int, cfg: EvaluateConfig, data: PreparedData, evaluator: LoadedEvaluator, device,
    conditions: dict[str, torch.Tensor] | None = None, space: FeatureSpace | None = None, inspect: Callable | None = None,
) -> tuple[dict, torch.Tensor]:
    """The metrics of ``cfg.num_samples`` samples of ``module`` and of the real-data floor; also the first 64 samples.

    Any generator ``G(z, c)`` mapping noise (B, z_dim) to images in [-1, 1] can
    be scored this way, which is how the quality benchmark scores the textbook
    DCGAN with exactly the pipeline's ruler. The real images are chosen by the real-set
    rule (:mod:`fashiongen.real_set`; a :class:`DataError` when the data is too
    small) and recorded: ``real_set``, ``real_count``, ``floor_count``.
    ``conditions`` (``{"train": ..., "test": ...}``, one row per image,
    :func:`split_conditions`; None for an unconditional generator) makes the
    samples conditional on the real images they are compared with, cycling
    through them when N exceeds R. ``space`` (default: the evaluator's) is
    what FID, KID, IS and precision/recall are measured in; class consistency
    and diversity always use the evaluator, the one ruler that knows the
    dataset's classes. ``inspect`` (e.g.
    :func:`fashiongen.analysis.inspection.inspect_generator`) gets what was
    scored as a :class:`~fashiongen.analysis.inspection.Scored` and returns
    more metrics.

    Memory: real and generated images are read or made ``cfg.batch_size`` at a
    time (at most :data:`~fashiongen.data.batches.MAX_BATCH_PIXELS` pixels a
    batch) and only their features are kept, so it does not grow with the
    number of images. Returns (metrics, the first 64 samples as uint8 for the grid).
    """
    real_set = plan_real_set(len(data.split("train")), len(data.split("test")), cfg.num_samples, cfg.pr_neighbours)
    n = real_set.num_samples
    if conditions is None:
        conditions = {split: torch.empty(len(data.split(split)), 0) for split in SPLITS}
    real = draw_real(real_set, data, conditions, cfg.seed)
    source = np.resize(np.arange(real_set.count), n)  # sample i is conditioned like real image i mod R
    cond = real.conditions[torch.as_tensor(source)]
    z = noise(n, z_dim, cfg.seed)
    batch = bounded_batch(cfg.batch_size, data.image_size)  # samples made (and measured) at a time

    def features(images):
        return extract(evaluator.model, images, cfg.batch_size, device)

    space = space or FeatureSpace(evaluator.id, evaluator.recipe, features)
    in_evaluator_space = space.id == evaluator.id
    real_feats, real_logits = space.extract(real.images)
    floor_real, floor_other = real.floor_features(real_feats, space.extract)
    # the evaluator's view of the samples too when it is not the scoring space and classes are asked about
    both = not in_evaluator_space and (cond.numel() > 0 or inspect is not None)
    measured, grid = sample_features(module, z, cond, batch, device,
                                     [space.extract, features] if both else [space.extract], keep=GRID_SAMPLES)
    fake_feats, fake_logits = measured[0]
    in_evaluator = measured[-1]

    model = score(real_feats, fake_feats, fake_logits, cfg)
    floor = score(floor_real, floor_other, real_logits, cfg)
    metrics = {
        **model,
        **floors(floor),  # fid_floor, kid_mean_floor, is_mean_floor, precision_floor, recall_floor
        "evaluator_accuracy": evaluator.accuracy,
        "features": space.id,
        "features_recipe": space.recipe,
        "num_samples": n,
        "real_set": real_set.name,
        "real_count": real_set.count,
        "floor_count": real_set.floor_count,
        "kid_subset_size": min(cfg.kid_subset_size, n, real_set.count),
    }
    if cond.numel():  # a conditional generator: does it follow its conditions, does the noise still matter?
        metrics["class_consistency"] = class_consistency(in_evaluator[1], real.labels[source])
        metrics["diversity"] = diversity(module, z_dim, real.conditions, real.labels, cfg, real.images, features, device,
                                         batch)
    if inspect is not None:
        known = (real.floor_index, floor_other) if real.floor_index is not None else (np.empty(0, dtype=np.int64), None)
        metrics.update(inspect(Scored(
            module=module, z=z, cond=cond, source=source, real=real, reference=(real_feats, real_logits),
            fake=(fake_feats, fake_logits), fake_in_evaluator=in_evaluator, train=known, space=space.extract,
            evaluator=features, in_evaluator_space=in_evaluator_space, metrics=metrics, batch_size=batch)))
    return metrics, grid


def class_consistency(fake_logits: torch.Tensor, asked: np.ndarray) -> float:
    """Share of samples the evaluator classifies as the class they were conditioned on."""
    return float((fake_logits.argmax(dim=1).numpy() == asked).mean())


def mean_pairwise_distance(features: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance between distinct members of each group; ``features`` is G×K×D."""
    k = features.shape[1]
    return torch.cdist(features, features).sum(dim=(1, 2)) / (k * (k - 1))


def diversity(module, z_dim, conditions, labels, cfg: EvaluateConfig, images: Images, features, device,
              batch: int | None = None) -> float:
    """Spread of samples sharing a condition relative to real images of its class (see the module doc).

    The groups are the conditions of ``diversity_groups`` random real images
    (``images``, the reference set, with their ``labels`` and ``conditions``);
    each gets ``diversity_per_group`` samples (fresh noise) and is compared with
    as many random reference images of the same class (drawn with replacement
    when the class has fewer).
    """
    rng = np.random.default_rng(cfg.seed + 1)
    groups, per_group = min(cfg.diversity_groups, len(labels)), cfg.diversity_per_group
    sources = rng.choice(len(labels), size=groups, replace=False)
    cond = conditions[np.repeat(sources, per_group)]
    z = noise(groups * per_group, z_dim, cfg.seed + 1)
    [(fake_feats, _)], _ = sample_features(module, z, cond, batch or cfg.batch_size, device, [features])
    real_index = []
    for source in sources:
        same_class = np.flatnonzero(labels == labels[source])
        real_index.append(rng.choice(same_class, size=per_group, replace=len(same_class) < per_group))
    real_feats, _ = features(Subset(images, np.concatenate(real_index)))
    spread = mean_pairwise_distance(fake_feats.view(groups, per_group, -1)).mean()
    real_spread = mean_pairwise_distance(real_feats.view(groups, per_group, -1)).mean()
    return float(spread / real_spread)


def score(real_feats: torch.Tensor, feats: torch.Tensor, logits: torch.Tensor, cfg: EvaluateConfig) -> dict:
    """The set metrics of :data:`fashiongen.metrics.table.METRICS` (FID, KID, IS, precision/recall) of one image set
    (``feats``, IS from ``logits``) against ``real_feats``: :func:`fashiongen.metrics.scores.measure_set`."""
    return measure_set(real_feats, feats, logits, cfg)
