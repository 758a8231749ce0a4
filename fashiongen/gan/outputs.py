"""Where the train stage writes, and how a finished run's outputs replace the previous ones.

A run writes everything it produces while training (dvclive's ``metrics.json``
and ``plots/metrics/*.tsv``, the per-epoch sample grids, checkpoints) into its
work area, ``models/checkpoints/`` (``run/`` for the logs and grids). The
stage's outputs (``models/generator.pt``, ``models/generator_best.pt``,
``results/train/metrics.json``, ``results/train/plots/metrics/``,
``results/train/samples/``) are replaced only when the run has finished, by
:func:`publish`, each atomically. A run that stops for any reason (divergence,
an exception, Ctrl-C or SIGTERM, a full disk) leaves every previous output as
it was and consistent with the others; a killed run resumes from its work
area. If a kill lands during the publication itself, the next run finds the
last checkpoint unpublished and publishes it again (see
:func:`fashiongen.gan.run_state.resume_plan`).

Watch a running training in ``models/checkpoints/run/`` (its sample grids and
dvclive files); ``results/train/`` shows the last finished run.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from fashiongen.atomic import atomic_directory, write_bytes


@dataclass(frozen=True)
class TrainPaths:
    prepared: Path
    encodings: Path  # read only when model.condition is encoding
    evaluator: Path
    generator: Path
    best_generator: Path  # the generator at the epoch with the lowest in-training FID
    checkpoints: Path  # the work area: checkpoints, and run/ with the running run's logs and grids
    results: Path  # dvclive folder of the last finished run; sample grids in results/samples

    @property
    def samples(self) -> Path:
        return self.results / "samples"

    @property
    def staging(self) -> Path:
        """The running run's dvclive folder (its grids in ``staging/samples``)."""
        return self.checkpoints / "run"

    @property
    def staging_samples(self) -> Path:
        return self.staging / "samples"


def publish_logs(paths: TrainPaths) -> None:
    """Replace the logs and grids in ``paths.results`` with the finished run's, each path atomically.

    The folders are copied (the work area keeps its own, so a kill during the
    publication can publish again).
    """
    for relative in ("plots/metrics", "samples"):
        source = paths.staging / relative
        with atomic_directory(paths.results / relative) as staging:
            if source.is_dir():
                shutil.copytree(source, staging, dirs_exist_ok=True)
    summary = paths.staging / "metrics.json"
    if summary.is_file():
        write_bytes(paths.results / "metrics.json", summary.read_bytes())
