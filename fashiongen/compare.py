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
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fashiongen.errors import FashionGenError

DIRECTIONS = {
    "fid": "lower",
    "kid_mean": "lower",
    "is_mean": "higher",
    "precision": "higher",
    "recall": "higher",
    "class_consistency": "higher",
    "diversity": "higher",
}


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
    verdict: str  # "ok", "better", "WORSE", "missing", "info"

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
        return [row for row in self.rows if row.verdict in ("WORSE", "missing")]

    def passed(self, allow_ruler_change: bool = False) -> bool:
        return not self.regressions and (allow_ruler_change or not self.ruler_problems)


def load_metrics(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FashionGenError(f"{path} does not exist.") from None
    except json.JSONDecodeError as exc:
        raise FashionGenError(f"{path} is not valid JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise FashionGenError(f"{path} must hold a JSON object of metrics.")
    return data


def load_tolerances(path: Path | str | None) -> dict[str, Tolerance]:
    """Tolerances from a YAML file ``{metric: {better, absolute, relative}}``; defaults: exact."""
    if path is None:
        return {name: Tolerance(better) for name, better in DIRECTIONS.items()}
    from fashiongen.config import read_yaml

    raw = read_yaml(Path(path)) or {}
    tolerances = {}
    for name, spec in raw.items():
        spec = dict(spec or {})
        better = spec.pop("better", DIRECTIONS.get(name))
        if better not in ("lower", "higher"):
            raise FashionGenError(f"{path}: {name}.better must be 'lower' or 'higher', got {better!r}.")
        unknown = set(spec) - {"absolute", "relative"}
        if unknown:
            raise FashionGenError(f"{path}: {name} has unknown keys {sorted(unknown)} (allowed: better, absolute, relative).")
        tolerances[name] = Tolerance(better, float(spec.get("absolute", 0.0)), float(spec.get("relative", 0.0)))
    return tolerances


def compare(baseline: dict[str, Any], current: dict[str, Any], tolerances: dict[str, Tolerance]) -> Comparison:
    comparison = Comparison(rows=[])
    _check_ruler(baseline, current, comparison)
    for name, tolerance in tolerances.items():
        if name not in baseline:
            continue  # not measured in this profile (e.g. class consistency of an unconditional model)
        comparison.rows.append(_judge(name, baseline[name], current.get(name), tolerance))
    shown = set(tolerances)
    for name in sorted(set(baseline) & set(current) - shown):
        if _is_number(baseline[name]) and _is_number(current[name]):
            comparison.rows.append(Row(name, baseline[name], current[name], "info"))
    return comparison


def _judge(name: str, base: Any, now: Any, tolerance: Tolerance) -> Row:
    if not _is_number(now) or not math.isfinite(now):
        return Row(name, base, now if _is_number(now) else None, "missing")
    worsening = (now - base) if tolerance.better == "lower" else (base - now)
    allowed = tolerance.allowed(base)
    if worsening > allowed:
        verdict = "WORSE"
    elif -worsening > allowed:
        verdict = "better"
    else:
        verdict = "ok"
    return Row(name, base, now, verdict)


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


def to_markdown(comparison: Comparison, allow_ruler_change: bool = False) -> str:
    lines = ["| metric | baseline | current | change | verdict |", "|---|---:|---:|---:|---|"]
    for row in comparison.rows:
        lines.append(f"| {row.metric} | {_fmt(row.baseline)} | {_fmt(row.current)} | {_fmt_change(row)} | {row.verdict} |")
    for note in comparison.notes:
        lines.append(f"\nNote: {note}.")
    for problem in comparison.ruler_problems:
        prefix = "Warning" if allow_ruler_change else "FAIL"
        lines.append(f"\n{prefix}: {problem}.")
    regressions = comparison.regressions
    if regressions:
        names = ", ".join(row.metric for row in regressions)
        lines.append(f"\nFAIL: {names} moved the wrong way beyond tolerance.")
    elif comparison.passed(allow_ruler_change):
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
