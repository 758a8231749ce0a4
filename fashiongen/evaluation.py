"""The evaluate stage: score a trained generator against held-out real images.

N generated images are compared with N real test images in the evaluator's
feature space. Beside the model's scores stands the floor: the same metrics
between N *training* images and the same N test images, i.e. what a perfect
generator (one that samples the true distribution) would score with this
evaluator and this N. A reader sees how far from real the model is, and two
numbers measured with different evaluators or different N are never mixed up:
the file records both.

A conditional generator is scored on the conditions of the held-out test
images it is compared with: their labels (so classes come in their test
proportions) or their encodings. Two more metrics then say whether the
condition is obeyed and whether the noise still matters:

- ``class_consistency``: the share of samples the evaluator puts in the class
  asked for (label) or in the class of the source image (encoding);
- ``diversity``: the mean pairwise feature distance of samples sharing one
  condition, divided by that of real test images of the condition's class.
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

from fashiongen.atomic import write_json
from fashiongen.config import EvaluateConfig
from fashiongen.data.prepared import PreparedData, load_prepared
from fashiongen.device import resolve_device
from fashiongen.errors import ConfigError
from fashiongen.gan.artifact import GeneratorSpec, load_generator
from fashiongen.gan.conditions import condition_kind
from fashiongen.gan.sampling import sample_uint8
from fashiongen.metrics.table import floors
from fashiongen.images import save_grid
from fashiongen.metrics.features import LoadedEvaluator, extract, load_evaluator
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
    encodings: Path = Path("data/encodings")  # read only for generators with condition encoding


def pick(n_total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct sorted indices out of ``n_total`` (all of them when ``n == n_total``)."""
    if n == n_total:
        return np.arange(n_total)
    return np.sort(rng.choice(n_total, size=n, replace=False))


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
    from fashiongen.metrics.inception import InceptionFeatures, resolve_weights

    inception = InceptionFeatures(resolve_weights(cfg.inception_weights), device)
    return FeatureSpace(inception.id, inception.recipe, lambda images: inception.extract(images, cfg.batch_size))


def evaluate(cfg: EvaluateConfig, paths: EvaluatePaths, device_name: str = "auto") -> dict:
    """Sample, score against the test split and its real-vs-real floor, write the metrics."""
    device = resolve_device(device_name)
    space = inception_space(cfg, device) if cfg.features == "inception" else None  # first: missing weights fail fast
    data = load_prepared(paths.prepared)
    evaluator = load_evaluator(paths.evaluator, device)
    generator = load_generator(paths.generator, device)
    conditions = test_conditions(generator.spec, data, paths.encodings)
    from fashiongen.analysis.inspection import inspect_generator  # memorisation, per class, truncation, walks

    metrics, fakes = score_generator(
        generator.module, generator.spec.z_dim, cfg, data, evaluator, device, conditions, space,
        inspect=lambda scored: inspect_generator(cfg, data, scored, paths.metrics.parent, device),
    )
    write_json(paths.metrics, metrics)
    save_grid(paths.samples, fakes[:GRID_SAMPLES])
    log.info("FID %.3f (floor %.3f), KID %.5f, IS %.3f", metrics["fid"], metrics["fid_floor"], metrics["kid_mean"], metrics["is_mean"])
    return metrics


def test_conditions(spec: GeneratorSpec, data: PreparedData, encodings_dir: Path) -> torch.Tensor:
    """The condition of every test image for ``spec``'s generator (N×0 for an unconditional one)."""
    kind = condition_kind(spec.condition)
    return kind.values(data.split("test").labels, data.num_classes, encodings_dir, "test", encoder_id=spec.encoder)


def score_generator(
    module: torch.nn.Module, z_dim: int, cfg: EvaluateConfig, data: PreparedData, evaluator: LoadedEvaluator, device,
    conditions: torch.Tensor, space: FeatureSpace | None = None, inspect: Callable | None = None,
) -> tuple[dict, torch.Tensor]:
    """The metrics of ``cfg.num_samples`` samples of ``module`` and of the real-data floor; also the samples.

    Any generator ``G(z, c)`` mapping noise (B, z_dim) to images in [-1, 1] can
    be scored this way, which is how the quality benchmark scores the textbook
    DCGAN with exactly the pipeline's ruler. ``conditions`` (one per test image,
    :func:`test_conditions`; N×0 for an unconditional generator) makes the
    samples conditional on the test images they are compared with. ``space``
    (default: the evaluator's) is what FID, KID, IS and precision/recall are
    measured in; class consistency and diversity always use the evaluator,
    the one ruler that knows the dataset's classes. ``inspect`` (e.g.
    :func:`fashiongen.analysis.inspection.inspect_generator`) gets what was
    scored as a :class:`~fashiongen.analysis.inspection.Scored` and returns
    more metrics.
    """
    test, train = data.split("test"), data.split("train")
    n = cfg.num_samples
    if n > len(test) or n > len(train):
        raise ConfigError(
            f"evaluate.num_samples={n} but the prepared data has {len(test)} test and {len(train)} "
            "training images; lower evaluate.num_samples."
        )
    rng = np.random.default_rng(cfg.seed)
    test_index = pick(len(test), n, rng)
    real_test = test.images[test_index]
    train_index = pick(len(train), n, rng)
    real_train = train.images[train_index]
    cond = conditions[test_index]
    fakes = sample_uint8(module, n, z_dim, cfg.seed, cfg.batch_size, device, cond=cond)

    def features(images):
        return extract(evaluator.model, images, cfg.batch_size, device)

    space = space or FeatureSpace(evaluator.id, evaluator.recipe, features)
    test_feats, test_logits = space.extract(real_test)
    train_feats, _ = space.extract(real_train)
    fake_feats, fake_logits = space.extract(fakes)

    model = score(test_feats, fake_feats, fake_logits, cfg)
    floor = score(test_feats, train_feats, test_logits, cfg)
    metrics = {
        **model,
        **floors(floor),  # fid_floor, kid_mean_floor, is_mean_floor, precision_floor, recall_floor
        "evaluator_accuracy": evaluator.accuracy,
        "features": space.id,
        "features_recipe": space.recipe,
        "num_samples": n,
        "kid_subset_size": min(cfg.kid_subset_size, n),
    }
    if conditions.numel():  # a conditional generator: does it follow its conditions, does the noise still matter?
        labels = np.asarray(test.labels)
        class_logits = fake_logits if space.id == evaluator.id else features(fakes)[1]
        metrics["class_consistency"] = class_consistency(class_logits, labels[test_index])
        metrics["diversity"] = diversity(module, z_dim, conditions, labels, cfg, test, features, device)
    if inspect is not None:
        from fashiongen.analysis.inspection import Scored

        metrics.update(inspect(Scored(module, z_dim, fakes, cond, test_index, (test_feats, test_logits),
                                      (fake_feats, fake_logits), (train_index, train_feats), space.extract, features,
                                      space.id == evaluator.id, metrics)))
    return metrics, fakes


def class_consistency(fake_logits: torch.Tensor, asked: np.ndarray) -> float:
    """Share of samples the evaluator classifies as the class they were conditioned on."""
    return float((fake_logits.argmax(dim=1).numpy() == asked).mean())


def mean_pairwise_distance(features: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance between distinct members of each group; ``features`` is G×K×D."""
    k = features.shape[1]
    return torch.cdist(features, features).sum(dim=(1, 2)) / (k * (k - 1))


def diversity(module, z_dim, conditions, labels, cfg: EvaluateConfig, test, features, device) -> float:
    """Spread of samples sharing a condition relative to real images of its class (see the module doc).

    The groups are the conditions of ``diversity_groups`` random test images;
    each gets ``diversity_per_group`` samples (fresh noise) and is compared with
    as many random real test images of the same class.
    """
    rng = np.random.default_rng(cfg.seed + 1)
    groups, per_group = min(cfg.diversity_groups, len(labels)), cfg.diversity_per_group
    sources = rng.choice(len(labels), size=groups, replace=False)
    cond = conditions[np.repeat(sources, per_group)]
    fakes = sample_uint8(module, groups * per_group, z_dim, cfg.seed + 1, cfg.batch_size, device, cond=cond)
    real_index = []
    for source in sources:
        same_class = np.flatnonzero(labels == labels[source])
        real_index.append(rng.choice(same_class, size=per_group, replace=len(same_class) < per_group))
    fake_feats, _ = features(fakes)
    real_feats, _ = features(test.images[np.concatenate(real_index)])
    spread = mean_pairwise_distance(fake_feats.view(groups, per_group, -1)).mean()
    real_spread = mean_pairwise_distance(real_feats.view(groups, per_group, -1)).mean()
    return float(spread / real_spread)


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
