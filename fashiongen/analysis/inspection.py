"""The evaluate stage's look inside the generator: memorisation, per-class view, truncation, interpolation.

:func:`inspect_generator` runs on what the evaluate stage has already
sampled and measured (:class:`Scored`) and writes, beside ``metrics.json``:

- ``nearest_neighbours.png``: the 8 samples closest to a training image,
  each followed by its 3 nearest training images (evaluator features);
- ``per_class.csv``: class shares of samples and real images, under-produced
  flags, intra-class FID for conditional models (``dvc plots``);
- ``truncation.csv`` (ψ, FID, precision, recall for every ψ of
  ``evaluate.truncation``) and ``truncation.png`` (the same 8 noise vectors,
  one row per ψ);
- ``interpolation.png``: 4 walks of 8 steps (noise for unconditional models,
  class to class for label models, test image to test image for encoding
  models).

It returns the scalars for ``metrics.json``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fashiongen.analysis.interpolation import condition_code, render_walk, walk_inputs
from fashiongen.analysis.memorisation import memorisation, mifid, neighbour_rows
from fashiongen.analysis.per_class import intra_class_fid, per_class_metrics, per_class_table
from fashiongen.analysis.truncation import truncated_noise
from fashiongen.atomic import atomic_write
from fashiongen.config import EvaluateConfig
from fashiongen.data.batches import Images, ImageSource, Subset
from fashiongen.data.prepared import PreparedData
from fashiongen.gan.sampling import generate_uint8, redraw, sample_features
from fashiongen.images import save_grid
from fashiongen.metrics.real_draw import RealDraw
from fashiongen.metrics.scores import frechet_distance, knn_radii, precision_recall

log = logging.getLogger(__name__)

NEIGHBOURS = 3
NEIGHBOUR_ROWS = 8
TRUNCATION_COLUMNS = 8
WALKS, WALK_STEPS = 4, 8
OUTPUTS = {
    "neighbours": "nearest_neighbours.png",
    "per_class": "per_class.csv",
    "truncation": "truncation.csv",
    "truncation_grid": "truncation.png",
    "interpolation": "interpolation.png",
}

Extract = Callable[[np.ndarray | torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True, kw_only=True)
class Scored:
    """What the evaluate stage sampled and measured: N samples and the R real reference images beside them.

    Features are float32 (rows × D), logits float32 (rows × classes), on the CPU.
    """

    module: torch.nn.Module
    z: torch.Tensor  # float32 N×z_dim: sample i is G(z[i], cond[i]) (noise(N, z_dim, seed)), never held as images
    cond: torch.Tensor  # the condition of each sample (that of reference image source[i]; N×0 for none)
    source: np.ndarray  # int N: the reference image each sample was conditioned like
    real: RealDraw  # the reference images, labels and held-out mask
    reference: tuple[torch.Tensor, torch.Tensor]  # the reference's (features, logits) in the scoring space
    fake: tuple[torch.Tensor, torch.Tensor]  # the samples' (features, logits) in the scoring space
    fake_in_evaluator: tuple[torch.Tensor, torch.Tensor] | None  # the same in the evaluator's space (= fake when shared)
    train: tuple[np.ndarray, torch.Tensor | None]  # training images already measured: (index, features in the scoring space)
    space: Extract  # the scoring space's extractor (FID, precision/recall)
    evaluator: Extract  # the evaluator's extractor (nearest neighbours, classes)
    in_evaluator_space: bool  # whether the scoring space is the evaluator's (features can be shared)
    metrics: dict  # the scores already computed (fid, precision, recall at ψ = 1)
    batch_size: int = 1000  # samples made at a time (evaluate.batch_size, bounded by the image size)

    @property
    def z_dim(self) -> int:
        return self.z.shape[1]

    def __len__(self) -> int:
        return len(self.z)

    def samples(self, rows: list[int], device) -> torch.Tensor:
        """Samples ``rows`` (uint8, bit for bit those measured), made again from their noise."""
        return redraw(self.module, self.z, self.cond, self.batch_size, device, rows)


def inspect_generator(cfg: EvaluateConfig, data: PreparedData, scored: Scored, out_dir: Path, device) -> dict:
    """Run every analysis and write its files into ``out_dir``; the scalars for ``metrics.json``."""
    train = ImageSource(data.split("train").images)  # read per batch, never preloaded
    if scored.in_evaluator_space:
        (real_feats, real_logits), (fake_feats, fake_logits) = scored.reference, scored.fake
    else:
        real_feats, real_logits = scored.evaluator(scored.real.images)
        fake_feats, fake_logits = scored.fake_in_evaluator
    train_feats = training_features(scored, train)

    # only held-out reference images set the copy threshold (a training image is at distance 0 from itself)
    held_out = torch.from_numpy(np.asarray(scored.real.held_out, dtype=bool))
    found = memorisation(fake_feats, real_feats[held_out], train_feats, cfg.copy_percentile, NEIGHBOURS)
    samples = functools.partial(scored.samples, device=device)
    save_grid(out_dir / OUTPUTS["neighbours"], neighbour_rows(samples, train, found, NEIGHBOUR_ROWS), nrow=1 + NEIGHBOURS)
    metrics = {**found.metrics(), "mifid": mifid(train_feats, fake_feats)}

    labels = np.asarray(scored.real.labels)
    intra = None
    if scored.cond.numel():  # a conditional generator: sample i was asked for the class of reference image source[i]
        intra = intra_class_fid(scored.reference[0], labels, scored.fake[0], labels[scored.source], data.num_classes)
    table = per_class_table(data.classes, fake_logits.argmax(1).numpy(), real_logits.argmax(1).numpy(), labels,
                            cfg.underproduced_ratio, intra)
    write_csv(out_dir / OUTPUTS["per_class"], table)
    metrics.update(per_class_metrics(table))

    sweep = truncation_sweep(cfg, scored, device)
    write_csv(out_dir / OUTPUTS["truncation"], sweep)
    save_grid(out_dir / OUTPUTS["truncation_grid"], truncation_grid(cfg, scored, device), nrow=TRUNCATION_COLUMNS)
    save_grid(out_dir / OUTPUTS["interpolation"], interpolation_strips(cfg.seed, scored, labels, data.num_classes, device),
              nrow=WALK_STEPS)
    log.info("copy rate %.4f (reference %.4f), MiFID %.3f, under-produced: %s", metrics["copy_rate"],
             metrics["copy_rate_floor"], metrics["mifid"], ", ".join(metrics["underproduced"]) or "none")
    return metrics


def training_features(scored: Scored, images: Images) -> torch.Tensor:
    """The evaluator's features of every training image (N_train × D), reusing those the floor already measured.

    ``images``: the training split, read per batch (:mod:`fashiongen.data.batches`).
    """
    known_index, known = scored.train
    if not scored.in_evaluator_space or known is None:
        return scored.evaluator(images)[0]
    rest = np.setdiff1d(np.arange(len(images)), known_index)
    features = torch.empty(len(images), known.shape[1], dtype=known.dtype)
    features[torch.from_numpy(known_index)] = known
    if len(rest):
        features[torch.from_numpy(rest)] = scored.evaluator(Subset(images, rest))[0]
    return features


def truncation_sweep(cfg: EvaluateConfig, scored: Scored, device):
    """FID, precision and recall (scoring space, against the same test images) at every ψ of ``evaluate.truncation``.

    The samples at ψ use the noise of the scored samples truncated to ψ and
    the same conditions, so ψ = 1 is the stage's own scores (not recomputed).
    They are made and measured one batch at a time.
    """
    import pandas as pd

    rows, real_radii = [], None
    for psi in sorted(cfg.truncation, reverse=True):
        if psi == 1.0:
            fid, precision, recall = (scored.metrics[key] for key in ("fid", "precision", "recall"))
        else:
            z = truncated_noise(len(scored), scored.z_dim, cfg.seed, psi)
            [(feats, _)], _ = sample_features(scored.module, z, scored.cond, scored.batch_size, device, [scored.space])
            fid = frechet_distance(scored.reference[0], feats)
            real_radii = knn_radii(scored.reference[0], cfg.pr_neighbours) if real_radii is None else real_radii
            precision, recall = precision_recall(scored.reference[0], feats, cfg.pr_neighbours, real_radii)
        rows.append({"psi": psi, "fid": fid, "precision": precision, "recall": recall})
    return pd.DataFrame(rows, columns=["psi", "fid", "precision", "recall"])


def truncation_grid(cfg: EvaluateConfig, scored: Scored, device) -> torch.Tensor:
    """The first 8 samples' noise at ψ = 1 and at each ψ of the sweep, one row per ψ (uint8)."""
    columns = min(TRUNCATION_COLUMNS, len(scored))
    cond = scored.cond[:columns]
    rows = [
        generate_uint8(scored.module, truncated_noise(columns, scored.z_dim, cfg.seed, psi), columns, device, cond)
        for psi in sorted({1.0, *cfg.truncation}, reverse=True)
    ]
    return torch.cat(rows)


def interpolation_strips(seed: int, scored: Scored, labels: np.ndarray, num_classes: int, device) -> torch.Tensor:
    """``WALKS`` walks of ``WALK_STEPS`` images (uint8, row-major) for the report.

    Unconditional: noise walks (seeds ``seed``, ``seed + 1``, ...). Label and
    encoding models: from the condition of a scored test image of class r to
    one of class r + K/2 (K classes), at fixed noise.
    """
    strips = []
    for r in range(WALKS):
        ends = (first_of_class(labels, r % num_classes), first_of_class(labels, (r + num_classes // 2) % num_classes))
        start, end = (condition_code(scored.module, scored.cond[[i]].to(device)).cpu() for i in ends)
        z, codes = walk_inputs(scored.z_dim, WALK_STEPS, seed + r, start, end if scored.cond.numel() else None)
        strips.append(render_walk(scored.module, z, codes, device))
    return torch.cat(strips)


def first_of_class(labels: np.ndarray, c: int) -> int:
    """Index of the first scored test image of class ``c`` (0 when there is none)."""
    found = np.flatnonzero(labels == c)
    return int(found[0]) if len(found) else 0


def write_csv(path: Path, table) -> None:
    """A pandas table as CSV (no index, 6 significant digits), written atomically."""
    with atomic_write(path, "w") as handle:
        table.to_csv(handle, index=False, float_format="%.6g")
