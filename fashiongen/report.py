"""`fashiongen report`: one self-contained HTML page about one or several runs.

For each run (the workspace, or DVC experiments by name): its params, its
metrics beside the real-data floor, the fixed-noise sample grids at the start,
quarter, half, three-quarters and end of training, and the loss, D(x)/D(G(z))
and FID curves (matplotlib). With several runs a side-by-side table comes
first. Every image is embedded as a data URI, so the file can be mailed or
attached to a CI run as it is.

Files are read through DVC's filesystem at the run's revision, so experiments
that are not in the workspace work too (git-tracked files from git, DVC
outputs from the cache).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fashiongen.errors import FashionGenError

METRIC_FLOORS = (  # (metric, its real-data floor, which way is better)
    ("fid", "fid_floor", "lower"),
    ("kid_mean", "kid_floor_mean", "lower"),
    ("is_mean", "is_real_mean", "higher"),
    ("precision", "precision_floor", "higher"),
    ("recall", "recall_floor", "higher"),
    ("class_consistency", None, "higher"),
    ("diversity", None, "higher"),
    ("copy_rate", "copy_rate_reference", "lower"),
    ("mifid", None, "lower"),
    ("class_share_distance", None, "lower"),
    ("intra_fid_mean", None, "lower"),
)
CURVES = (("Losses", ("d_loss", "g_loss")), ("D(x) and D(G(z))", ("d_real", "d_fake")), ("FID during training", ("fid",)))
PROGRESS_POINTS = (("start", 0.0), ("quarter", 0.25), ("half", 0.5), ("three quarters", 0.75), ("end", 1.0))
SAMPLES_DIR = "results/train/samples"
METRICS_DIR = "results/train/plots/metrics"


@dataclass
class Run:
    name: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    curves: dict[str, Any]  # metric name -> pandas DataFrame (step, value)
    grids: list[tuple[str, int, bytes]] = field(default_factory=list)  # (label, epoch, png)
    final_grid: bytes | None = None
    inspection: Any = None  # fashiongen.analysis.report_view.Inspection


def load_run(repo: Path, exp: str | None) -> Run:
    """Read one run's files: the workspace when ``exp`` is None, else the experiment's revision."""
    import pandas as pd
    from dvc.api import DVCFileSystem
    from dvc.exceptions import DvcException

    try:
        fs = DVCFileSystem(str(repo), rev=exp)
    except DvcException as exc:
        raise FashionGenError(f"cannot open experiment {exp!r} in {repo}: {exc}; see `dvc exp show`.") from None
    except Exception as exc:  # scmrepo raises its own errors for unknown revisions
        raise FashionGenError(f"unknown experiment or revision {exp!r} ({type(exc).__name__}); see `dvc exp show`.") from None

    def read(path: str) -> bytes | None:
        return fs.read_bytes(path) if fs.exists(path) else None

    from ruamel.yaml import YAML

    params_bytes = read("params.yaml")
    metrics_bytes = read("results/evaluate/metrics.json")
    if metrics_bytes is None:
        where = f"experiment {exp!r}" if exp else "the workspace"
        raise FashionGenError(f"{where} has no results/evaluate/metrics.json: run the pipeline first (`dvc repro`).")
    curves = {}
    epochs = read(f"{METRICS_DIR}/epoch.tsv")
    epoch_of_step = pd.read_csv(io.BytesIO(epochs), sep="\t") if epochs is not None else None
    for _, names in CURVES:
        for name in names:
            data = read(f"{METRICS_DIR}/{name}.tsv")
            if data is not None:
                frame = pd.read_csv(io.BytesIO(data), sep="\t")
                if epoch_of_step is not None:  # dvclive logs a step index; epochs read better
                    frame = frame.merge(epoch_of_step, on="step", how="left")
                curves[name] = frame
    run = Run(
        name=exp or "workspace",
        params=YAML(typ="safe", pure=True).load(params_bytes) if params_bytes else {},
        metrics=json.loads(metrics_bytes),
        curves=curves,
        final_grid=read("results/evaluate/samples.png"),
    )
    from fashiongen.analysis.report_view import load_inspection

    run.inspection = load_inspection(read)
    epochs = sorted(int(Path(p).stem.split("_")[1]) for p in (fs.ls(SAMPLES_DIR, detail=False) if fs.exists(SAMPLES_DIR) else []))
    for label, epoch in progress_epochs(epochs):
        run.grids.append((label, epoch, read(f"{SAMPLES_DIR}/epoch_{epoch:04d}.png")))
    return run


def progress_epochs(epochs: list[int]) -> list[tuple[str, int]]:
    """The epochs closest to the start, quarter, half, three quarters and end of training.

    An epoch that is closest to several points appears once, named after the
    first of them, except that the last epoch is always called the end.
    """
    if not epochs:
        return []
    labels: dict[int, str] = {}
    for label, fraction in PROGRESS_POINTS:
        epoch = epochs[round(fraction * (len(epochs) - 1))]
        if epoch not in labels or label == "end":
            labels[epoch] = label
    return [(label, epoch) for epoch, label in sorted(labels.items())]


def curve_figure(runs: list[Run], title: str, names: tuple[str, ...]) -> bytes | None:
    """One PNG with the named curves of every run (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [(run, name) for run in runs for name in names if name in run.curves]
    if not series:
        return None
    figure, axis = plt.subplots(figsize=(7, 3.2), dpi=100)
    for run, name in series:
        frame = run.curves[name]
        label = name if len(runs) == 1 else f"{run.name}: {name}"
        x = frame["epoch"] if "epoch" in frame else frame["step"]
        axis.plot(x, frame[name], label=label, marker="o" if name == "fid" else None, markersize=3)
    axis.set_title(title)
    axis.set_xlabel("epoch" if all("epoch" in run.curves[name] for run, name in series) else "logging step")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def render(runs: list[Run]) -> str:
    """The whole page as one HTML string."""
    parts = [_HEAD, "<h1>FashionGen report</h1>"]
    if len(runs) > 1:
        parts += ["<h2>Side by side</h2>", _side_by_side(runs)]
    parts.append("<h2>Training curves</h2>")
    for title, names in CURVES:
        png = curve_figure(runs, title, names)
        if png is not None:
            parts.append(_img(png, title))
    for run in runs:
        parts += [f"<h2>{html.escape(run.name)}</h2>", "<h3>Metrics beside the real-data floor</h3>", _metrics_table(run)]
        parts.append("<h3>Samples through training (fixed noise)</h3><div class=grids>")
        for label, epoch, png in run.grids:
            if png is not None:
                parts.append(f"<figure>{_img(png, f'{label}: epoch {epoch}')}<figcaption>{label} (epoch {epoch})</figcaption></figure>")
        parts.append("</div>")
        if run.final_grid is not None:
            parts += ["<h3>Samples scored by the evaluate stage</h3>", _img(run.final_grid, "evaluated samples")]
        if run.inspection is not None:
            from fashiongen.analysis.report_view import render_inspection

            parts += render_inspection(run.inspection, run.metrics, _img)
        parts += ["<details><summary>Params</summary>", _params_table(run.params), "</details>"]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(repo: Path, experiments: list[str], out: Path) -> Path:
    from fashiongen.atomic import atomic_write

    runs = [load_run(repo, name) for name in experiments] if experiments else [load_run(repo, None)]
    with atomic_write(out, "w") as handle:
        handle.write(render(runs))
    return out


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _metrics_table(run: Run) -> str:
    import pandas as pd

    rows = []
    for metric, floor, better in METRIC_FLOORS:
        if metric in run.metrics:
            rows.append({"metric": metric, "value": run.metrics[metric],
                         "real-data floor": run.metrics.get(floor) if floor else None, "better": better})
    table = pd.DataFrame(rows).to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="—", border=0)
    ruler = html.escape(
        f"evaluator {run.metrics.get('features')} (test accuracy {run.metrics.get('evaluator_accuracy', float('nan')):.4f}), "
        f"N = {run.metrics.get('num_samples')}"
    )
    return f"{table}<p class=note>Measured with {ruler}.</p>"


def _side_by_side(runs: list[Run]) -> str:
    import pandas as pd

    metrics = [m for m, _, _ in METRIC_FLOORS if any(m in run.metrics for run in runs)]
    frame = pd.DataFrame({run.name: [run.metrics.get(m) for m in metrics] for run in runs}, index=metrics)
    flat = {run.name: _flatten(run.params) for run in runs}
    keys = sorted({k for values in flat.values() for k in values})
    differing = [k for k in keys if len({json.dumps(values.get(k)) for values in flat.values()}) > 1]
    params = pd.DataFrame({name: [values.get(k) for k in differing] for name, values in flat.items()}, index=differing)
    rulers = {run.metrics.get("features") for run in runs}
    warning = "" if len(rulers) == 1 else "<p class=warn>These runs were measured with different evaluators: their metrics are not comparable.</p>"
    return (
        frame.to_html(float_format=lambda v: f"{v:.4g}", na_rep="—", border=0)
        + warning
        + "<h3>Params that differ</h3>"
        + (params.to_html(border=0) if differing else "<p>None.</p>")
    )


def _params_table(params: dict) -> str:
    import pandas as pd

    flat = _flatten(params)
    return pd.DataFrame({"value": [json.dumps(v) for v in flat.values()]}, index=list(flat)).to_html(border=0)


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"train": {"epochs": 6}} -> {"train.epochs": 6}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


_HEAD = """<!doctype html><html><head><meta charset="utf-8"><title>FashionGen report</title><style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:right}
th{background:#f4f4f4}.grids{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0;text-align:center}
.note{color:#666;font-size:.9em}.warn{color:#a00;font-weight:bold}img{max-width:100%}
</style></head><body>"""
