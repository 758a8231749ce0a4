"""The metric gate: is CURRENT worse than BASELINE beyond tolerance?

Each gated metric has a direction (FID and KID lower is better; IS, class
consistency, precision, recall and diversity higher) and a tolerance: it may
worsen by up to ``max(absolute, relative × |baseline|)`` before the gate fails.
Other numbers in the files are shown for information.

Two metrics files are only comparable when they were measured with the same
ruler: the same evaluator (``features``) and the same N (``num_samples``). An
evaluator retrained from the same recipe on another machine can differ in the
last bits of its weights; that is accepted and noted. A different recipe or N
fails the gate unless ``allow_ruler_change`` is set.

The gate cannot be fooled by a malformed file: a gated metric that is not a
finite number (NaN, ±inf, null, a string, a bool) in either file, and a
tolerance file that does not validate (unknown key, ``relative: 5%``, a
negative or non-numeric bound), are errors naming the file and the key.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from fashiongen.config import read_yaml
from fashiongen.errors import FashionGenError
from fashiongen.metrics.table import BY_KEY, DIRECTIONS, normalise_keys


@dataclass(frozen=True)
class Tolerance:
    better: str  # "lower" | "higher"
    absolute: float = 0.0
    relative: float = 0.0

    def allowed(self, baseline: float) -> float:
        return max(self.absolute, self.relative * abs(baseline))


@dataclass(frozen=True)
class Row:
    metric: str
    baseline: float | None
    current: float | None
    verdict: str  # "ok", "better", "WORSE", "missing", "invalid" (not a finite number), "info"

    @property
    def change(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline


@dataclass
class Comparison:
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    ruler_problems: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        return [row for row in self.rows if row.verdict in ("WORSE", "missing", "invalid")]

    def passed(self, allow_ruler_change: bool = False) -> bool:
        return not self.regressions and (allow_ruler_change or not self.ruler_problems)


def load_metrics(path: Path | str) -> dict[str, Any]:
    """A metrics file's JSON object (values unchecked: see :func:`check_metrics`), with today's key names.

    Reference keys of older files (``kid_floor_mean``, ``is_real_mean``) are
    read as today's (``kid_mean_floor``, ``is_mean_floor``:
    :mod:`fashiongen.metrics.table`).

    Raises:
        FashionGenError: the file is missing, unreadable, not JSON, or not an object.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FashionGenError(f"{path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FashionGenError(f"{path} cannot be read as a metrics file ({_reason(exc)}).") from None
    except json.JSONDecodeError as exc:
        raise FashionGenError(f"{path} is not valid JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise FashionGenError(f"{path} must hold a JSON object of metrics.")
    return normalise_keys(data)  # files from before the references' regular names compare too


def check_metrics(metrics: dict[str, Any], path: Path | str, names: list[str], fix: str) -> None:
    """Refuse a gated metric that is present but not a finite number (NaN, inf, null, string, bool).

    ``names``: the gated metrics to check; ``fix``: how to get a good file, for the message.

    Raises:
        FashionGenError: one line naming ``path``, the key and its value.
    """
    for name in names:
        if name in metrics and not _is_finite_number(metrics[name]):
            value = metrics[name]
            shown = json.dumps(value) if not isinstance(value, float) else repr(value)
            raise FashionGenError(
                f"{path}: {name} is {shown} ({type(value).__name__}), not a finite number; "
                f"the gate compares finite numbers only: {fix}."
            )


class _MetricTolerance(BaseModel):
    """One metric's entry in a tolerance file; strict like params.yaml."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    better: Optional[Literal["lower", "higher"]] = None
    absolute: float = Field(0.0, ge=0, allow_inf_nan=False)
    relative: float = Field(0.0, ge=0, allow_inf_nan=False)


_TOLERANCE_FILE = TypeAdapter(dict[str, _MetricTolerance])
_ALLOWED = {
    "better": "'lower' or 'higher'",
    "absolute": "a finite number >= 0, in the metric's units",
    "relative": "a finite number >= 0, a fraction of |baseline| (0.05 for 5%)",
}


def load_tolerances(path: Path | str | None) -> dict[str, Tolerance]:
    """Tolerances from a YAML file ``{metric: {better, absolute, relative}}``; without a file, every metric exact.

    ``better`` may be left out for the metrics FashionGen knows (:data:`DIRECTIONS`).

    Raises:
        FashionGenError: one line naming the file, the key, what it holds and what is allowed.
    """
    if path is None:
        return {name: Tolerance(better) for name, better in DIRECTIONS.items()}

    path = Path(path)
    if not path.is_file():
        raise FashionGenError(f"tolerance file {path} does not exist or is not a file.")
    raw = read_yaml(path)
    shape = "a mapping {metric: {better: lower|higher, absolute: number, relative: number}}"
    if not isinstance(raw, dict) or not raw:
        raise FashionGenError(f"{path} must be {shape} naming at least one metric; got {type(raw).__name__} {raw!r:.60}.")
    try:
        specs = _TOLERANCE_FILE.validate_python({key: ({} if value is None else value) for key, value in raw.items()})
    except ValidationError as exc:
        problems = "; ".join(_tolerance_problem(error) for error in exc.errors())
        raise FashionGenError(f"{path}: {problems}.") from None
    tolerances = {}
    for name, spec in specs.items():
        better = spec.better or DIRECTIONS.get(name)
        if better is None:
            raise FashionGenError(
                f"{path}: {name}.better must be 'lower' or 'higher' (FashionGen knows the direction of "
                f"{', '.join(DIRECTIONS)} only)."
            )
        tolerances[name] = Tolerance(better, spec.absolute, spec.relative)
    return tolerances


def _tolerance_problem(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error["loc"]]
    if error["type"] == "extra_forbidden":
        return f"{'.'.join(loc)} is an unknown key (allowed: {', '.join(_ALLOWED)})"
    if len(loc) == 2 and loc[1] in _ALLOWED:
        return f"{'.'.join(loc)} must be {_ALLOWED[loc[1]]}, got {error['input']!r}"
    if len(loc) == 2 and loc[1] == "[key]":
        return f"metric name {loc[0]!r} must be a string"
    return f"{loc[0]} must be a mapping with keys {', '.join(_ALLOWED)}, got {error['input']!r:.60}"


def compare_files(baseline_path: Path, current_path: Path, tolerances_path: Path | None) -> Comparison:
    """:func:`compare` of two metrics files, after checking both hold finite numbers for every gated metric.

    Raises:
        FashionGenError: a file is missing or malformed, a gated metric is not a finite number, or the
        tolerance file is invalid (one line each).
    """
    tolerances = load_tolerances(tolerances_path)
    baseline, current = load_metrics(baseline_path), load_metrics(current_path)
    gated = [name for name in tolerances if name in baseline]
    if not gated:
        raise FashionGenError(
            f"{baseline_path} holds none of the gated metrics ({', '.join(tolerances)}): nothing to compare; "
            "regenerate the baseline from a good run (`bash .ci/gate --update-baseline`)."
        )
    check_metrics(baseline, baseline_path, gated, "regenerate the baseline from a good run (`bash .ci/gate --update-baseline`)")
    check_metrics(current, current_path, gated, "the run that wrote it failed to measure it; see its evaluate stage")
    return compare(baseline, current, tolerances)


def compare(baseline: dict[str, Any], current: dict[str, Any], tolerances: dict[str, Tolerance]) -> Comparison:
    comparison = Comparison(rows=[])
    _check_ruler(baseline, current, comparison)
    for name, tolerance in tolerances.items():
        if name not in baseline:  # not measured in this profile (e.g. class consistency of an unconditional model)
            comparison.notes.append(f"{name} is not in the baseline: not compared")
            continue
        comparison.rows.append(_judge(name, baseline[name], current.get(name), tolerance))
        blind = _blind_spot(name, baseline[name], tolerance)
        if blind:
            comparison.notes.append(blind)
    shown = set(tolerances)
    for name in sorted(set(baseline) & set(current) - shown):
        if _is_number(baseline[name]) and _is_number(current[name]):
            comparison.rows.append(Row(name, baseline[name], current[name], "info"))
    return comparison


def _judge(name: str, base: Any, now: Any, tolerance: Tolerance) -> Row:
    if not _is_finite_number(base):
        return Row(name, None, now if _is_finite_number(now) else None, "invalid")
    if not _is_finite_number(now):
        return Row(name, base, None, "missing" if now is None else "invalid")
    worsening = (now - base) if tolerance.better == "lower" else (base - now)
    allowed = tolerance.allowed(base)
    if worsening > allowed:
        verdict = "WORSE"
    elif -worsening > allowed:
        verdict = "better"
    else:
        verdict = "ok"
    return Row(name, base, now, verdict)


def _blind_spot(name: str, base: Any, tolerance: Tolerance) -> str | None:
    """A note when ``name`` cannot fail: its baseline lies within its tolerance of the worst value it can take.

    A recall of 0.004 gated with an absolute tolerance of 0.15 would pass a recall of 0: the check
    is there but blind, and the gate should say so rather than look like a guard.
    """
    metric = BY_KEY.get(name)
    if metric is None or metric.worst is None or not _is_finite_number(base):
        return None
    allowed = tolerance.allowed(base)
    reachable = base - allowed > metric.worst if tolerance.better == "higher" else base + allowed < metric.worst
    if reachable:
        return None
    return (f"{name} cannot fail this gate: its baseline {_fmt(base)} is within its tolerance {_fmt(allowed)} of "
            f"the worst value it can take ({_fmt(metric.worst)}), so a regression of it would go unseen; gate a "
            f"run where it is further from {_fmt(metric.worst)}, or tighten its tolerance")


def _check_ruler(baseline: dict, current: dict, comparison: Comparison) -> None:
    if baseline.get("num_samples") != current.get("num_samples"):
        comparison.ruler_problems.append(
            f"num_samples differs ({baseline.get('num_samples')} vs {current.get('num_samples')}): FID and KID depend on N"
        )
    # what the samples were scored against (fashiongen/real_set.py); files from before it was recorded used
    # N test images (a "test" set always holds N, which the check above compares)
    real = [(m.get("real_set", "test"), m.get("real_count", m.get("num_samples"))) for m in (baseline, current)]
    if real[0] != real[1] and real != [("test", real[0][1]), ("test", real[1][1])]:
        comparison.ruler_problems.append(
            f"measured against different real sets ({real[0][0]} set of {real[0][1]} images vs {real[1][0]} set of "
            f"{real[1][1]}); a score depends on the real images it is compared with: update the baseline"
        )
    if baseline.get("features") == current.get("features"):
        return
    recipe = baseline.get("features_recipe")
    if recipe is not None and recipe == current.get("features_recipe") and recipe != "unrecorded":
        comparison.notes.append(
            f"evaluator weights differ ({baseline.get('features')} vs {current.get('features')}) but come from the "
            f"same recipe ({recipe}): floating-point differences between machines"
        )
    else:
        comparison.ruler_problems.append(
            f"measured with different evaluators ({baseline.get('features')} vs {current.get('features')}); "
            "numbers from different rulers are not comparable: update the baseline"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


def to_markdown(comparison: Comparison, allow_ruler_change: bool = False) -> str:
    lines = ["| metric | baseline | current | change | verdict |", "|---|---:|---:|---:|---|"]
    for row in comparison.rows:
        lines.append(f"| {row.metric} | {_fmt(row.baseline)} | {_fmt(row.current)} | {_fmt_change(row)} | {row.verdict} |")
    for note in comparison.notes:
        lines.append(f"\nNote: {note}.")
    for problem in comparison.ruler_problems:
        prefix = "Warning" if allow_ruler_change else "FAIL"
        lines.append(f"\n{prefix}: {problem}.")
    worse = [row.metric for row in comparison.regressions if row.verdict == "WORSE"]
    unusable = [row.metric for row in comparison.regressions if row.verdict != "WORSE"]
    if worse:
        lines.append(f"\nFAIL: {', '.join(worse)} moved the wrong way beyond tolerance.")
    if unusable:
        lines.append(f"\nFAIL: {', '.join(unusable)} missing or not a finite number.")
    if comparison.passed(allow_ruler_change):
        lines.append("\nPASS: no metric moved the wrong way beyond its tolerance.")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _fmt_change(row: Row) -> str:
    change = row.change
    if change is None:
        return "—"
    relative = f" ({change / abs(row.baseline):+.1%})" if row.baseline else ""
    return f"{change:+.4g}{relative}"
