"""The evaluate stage: score the trained generator, look inside it, and write every file together.

:func:`evaluate` checks first what can fail in seconds (the real set's size,
Inception weights when asked for), then samples and scores the generator with
:func:`fashiongen.evaluation.score_generator`, runs the look inside it
(:func:`fashiongen.analysis.inspection.inspect_generator`) and writes
``metrics.json``, the sample grid and the analyses' files into a staging
folder that replaces the previous ones at the end: a failure changes none.
Last, the generator's model-registry entry (``models/dvc.yaml``,
:mod:`fashiongen.registry`) is rewritten with the scores it got.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fashiongen.analysis.inspection import inspect_generator
from fashiongen.atomic import staged_files, write_json
from fashiongen.config import EvaluateConfig
from fashiongen.data.prepared import load_prepared
from fashiongen.device import resolve_device
from fashiongen.evaluation import inception_space, score_generator, split_conditions
from fashiongen.gan.artifact import load_generator
from fashiongen.images import save_grid
from fashiongen.metrics.features import load_evaluator
from fashiongen.real_set import plan_real_set
from fashiongen.registry import write_registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluatePaths:
    prepared: Path
    evaluator: Path
    generator: Path
    metrics: Path  # results/evaluate/metrics.json; the analyses' files go beside it
    samples: Path  # in the same folder as ``metrics`` (the stage's outputs move in together)
    encodings: Path = Path("data/encodings")  # read only for generators with condition encoding
    registry: Path | None = None  # models/dvc.yaml: the generator's model-registry entry (fashiongen.registry)


def evaluate(cfg: EvaluateConfig, paths: EvaluatePaths, device_name: str = "auto") -> dict:
    """Sample, score against the real set and its real-vs-real floor, write the metrics; then, with
    ``paths.registry``, the generator's model-registry entry (:mod:`fashiongen.registry`)."""
    data = load_prepared(paths.prepared)
    split_sizes = len(data.split("train")), len(data.split("test"))
    plan_real_set(*split_sizes, cfg.num_samples, cfg.pr_neighbours)  # first: a set too small fails in seconds
    device = resolve_device(device_name)
    space = inception_space(cfg, device) if cfg.features == "inception" else None  # missing weights fail fast
    evaluator = load_evaluator(paths.evaluator, device)
    generator = load_generator(paths.generator, device)
    conditions = split_conditions(generator.spec, data, paths.encodings)

    # every file of the stage is written beside the old ones and moved in at the end: a failure changes none
    if paths.samples.parent != paths.metrics.parent:
        raise ValueError(f"EvaluatePaths: {paths.samples} must sit in the folder of {paths.metrics}")
    with staged_files(paths.metrics.parent) as staging:
        metrics, grid = score_generator(
            generator.module, generator.spec.z_dim, cfg, data, evaluator, device, conditions, space,
            inspect=lambda scored: inspect_generator(cfg, data, scored, staging, device),
        )
        write_json(staging / paths.metrics.name, metrics)
        save_grid(staging / paths.samples.name, grid)
    if paths.registry is not None:
        write_registry(paths.registry, paths.generator, generator.spec.to_dict(), generator.classes, metrics,
                       generator.params)
    log.info("FID %.3f (floor %.3f), KID %.5f, IS %.3f; %d samples against the %s real set of %d images",
             metrics["fid"], metrics["fid_floor"], metrics["kid_mean"], metrics["is_mean"], metrics["num_samples"],
             metrics["real_set"], metrics["real_count"])
    return metrics
