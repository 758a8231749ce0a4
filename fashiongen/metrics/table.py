"""The one table of FashionGen's metrics: key, display name, direction, real-data reference, how it is measured.

``evaluate`` measures these metrics and writes their keys to
``results/evaluate/metrics.json``, ``fashiongen compare`` gates them and
``fashiongen report`` shows them, all from this table (StyleGAN2-ADA's
``metric_main`` registry is the model). Each scored metric has a real-data
reference, the same metric measured on real images against the same real set
(the floor a generator approaches), under the regular key ``<metric>_floor``.

How a metric is measured (``measured_by``):

- ``set``: from the features of two image sets (samples or floor images against
  the real reference), by the function of :mod:`fashiongen.metrics.scores`
  named in ``score`` (one function may give several keys: KID's mean and std).
  :func:`fashiongen.metrics.scores.measure_set` runs them for the model and for
  the floor. Named, not imported, so this table (and ``fashiongen compare``,
  the CI gate) loads without torch.
- ``conditional``: by the evaluate stage for a conditional generator
  (:mod:`fashiongen.evaluation`): whether samples follow their condition.
- ``inspection``: by the look inside the generator
  (:mod:`fashiongen.analysis.inspection`).

Metrics files written before 2026-11-30 named two references irregularly
(``kid_floor_mean``, ``is_real_mean``); :func:`normalise_keys` reads them under
today's names, so an old baseline still compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Better = Literal["lower", "higher"]
MeasuredBy = Literal["set", "conditional", "inspection"]


@dataclass(frozen=True)
class Metric:
    """One metric of ``metrics.json``."""

    key: str
    display: str
    better: Better
    has_floor: bool = True  # the same metric of real images is reported as ``<key>_floor``
    worst: float | None = None  # the worst value it can take (0 for a share), None when unbounded
    measured_by: MeasuredBy = "set"
    score: str | None = None  # set metrics: the function of fashiongen.metrics.scores that measures it

    @property
    def floor(self) -> str | None:
        return f"{self.key}_floor" if self.has_floor else None


METRICS: tuple[Metric, ...] = (
    Metric("fid", "FID", "lower", score="fid_score"),
    Metric("kid_mean", "KID", "lower", score="kid_score"),
    Metric("is_mean", "Inception Score", "higher", worst=1.0, score="is_score"),
    Metric("precision", "precision", "higher", worst=0.0, score="precision_recall_score"),
    Metric("recall", "recall", "higher", worst=0.0, score="precision_recall_score"),
    Metric("class_consistency", "class consistency", "higher", has_floor=False, worst=0.0, measured_by="conditional"),
    Metric("diversity", "diversity", "higher", has_floor=False, worst=0.0, measured_by="conditional"),
    # the look inside the generator (fashiongen/analysis): copy_rate_floor is the real test images' own rate
    Metric("copy_rate", "copy rate", "lower", worst=1.0, measured_by="inspection"),
    Metric("mifid", "MiFID", "lower", has_floor=False, measured_by="inspection"),
    Metric("class_share_distance", "class share distance", "lower", has_floor=False, measured_by="inspection"),
    Metric("intra_fid_mean", "intra-class FID (mean)", "lower", has_floor=False, measured_by="inspection"),
)
BY_KEY: dict[str, Metric] = {metric.key: metric for metric in METRICS}
DIRECTIONS: dict[str, Better] = {metric.key: metric.better for metric in METRICS}
# the functions that measure the set metrics, each once, in the table's order
SET_SCORES: tuple[str, ...] = tuple(dict.fromkeys(m.score for m in METRICS if m.measured_by == "set" and m.score))

# old key -> today's key (metrics files written before the references had regular names)
LEGACY_KEYS = {"kid_floor_mean": "kid_mean_floor", "is_real_mean": "is_mean_floor"}


def floors(scores: dict[str, Any]) -> dict[str, Any]:
    """``{"fid_floor": ..., ...}``: the real-data references from the scores of real images (same keys as a model's)."""
    return {metric.floor: scores[metric.key] for metric in METRICS if metric.has_floor and metric.key in scores}


def normalise_keys(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` with legacy reference keys renamed to today's (a today's key, if present, wins)."""
    renamed = {LEGACY_KEYS.get(key, key): value for key, value in metrics.items() if key in LEGACY_KEYS}
    return {**renamed, **{key: value for key, value in metrics.items() if key not in LEGACY_KEYS}}
