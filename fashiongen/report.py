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
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fashiongen.analysis.report_view import load_inspection, render_inspection
from fashiongen.atomic import atomic_write
from fashiongen.errors import FashionGenError
from fashiongen.file_digest import file_sha256
from fashiongen.metrics.table import METRICS, normalise_keys
from fashiongen.web_folder import DEFAULT_FOLDER, PAGE, read_page_meta

CURVES = (("Losses", ("d_loss", "g_loss")), ("D(x) and D(G(z))", ("d_real", "d_fake")), ("FID during training", ("fid",)))
PROGRESS_POINTS = (("start", 0.0), ("quarter", 0.25), ("half", 0.5), ("three quarters", 0.75), ("end", 1.0))
SAMPLES_DIR = "results/train/samples"
METRICS_DIR = "results/train/plots/metrics"
METRICS_FILE = "results/evaluate/metrics.json"
_GRID_NAME = re.compile(r"epoch_(\d+)\.png")


@dataclass
class Run:
    name: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    curves: dict[str, Any]  # metric name -> pandas DataFrame (step, value)
    grids: list[tuple[str, int, bytes]] = field(default_factory=list)  # (label, epoch, png)
    final_grid: bytes | None = None
    inspection: Any = None  # fashiongen.analysis.report_view.Inspection
    missing: list[str] = field(default_factory=list)  # "path (why)" for each file the run should have but lacks

    @property
    def has_results(self) -> bool:
        """Whether anything beyond params can be shown."""
        return bool(self.metrics or self.curves or self.grids or self.final_grid)


def open_run_files(repo: Path, exp: str | None):
    """A DVCFileSystem of the workspace (``exp`` None) or of an experiment, branch, tag or commit.

    The revision is resolved first (DVC's own rule: git revisions, then
    experiment names), because a DVCFileSystem at an unknown revision raises
    nothing: it reads as empty.

    Raises:
        FashionGenError: ``repo`` is not a DVC repository, or ``exp`` names nothing (one line each).
    """
    from dvc.api import DVCFileSystem
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo
    from dvc.scm import RevError, resolve_rev
    from scmrepo.git import Git

    try:
        dvc_repo = Repo(str(repo))
    except NotDvcRepoError:
        raise FashionGenError(
            f"--repo {repo} is not in a DVC repository: run `fashiongen report` inside the FashionGen repository, "
            "or pass --repo with its path."
        ) from None
    with dvc_repo:
        root, rev = dvc_repo.root_dir, None
        if exp is not None:
            if not isinstance(dvc_repo.scm, Git):
                raise FashionGenError(f"--exp {exp!r} needs a git repository, and {root} has no git.")
            try:
                rev = resolve_rev(dvc_repo.scm, exp)
            except RevError:
                raise FashionGenError(
                    f"unknown experiment {exp!r} in {root}: `dvc exp show` lists the experiments here "
                    f"(a branch, tag or commit works too); one run elsewhere comes with `dvc exp pull <git remote> {exp}`."
                ) from None
    try:
        return DVCFileSystem(root, rev=rev)
    except DvcException as exc:
        raise FashionGenError(f"cannot open experiment {exp!r} in {root}: {exc}; see `dvc exp show`.") from None


class _RunFiles:
    """Reads a run's files; a file the run lists but that cannot be read is noted in ``missing``."""

    def __init__(self, fs):
        self.fs = fs
        self.missing: list[str] = []

    def read(self, path: str) -> bytes | None:
        """The file's bytes; None when the run has no such file, or when it is listed but not here."""
        if not self.fs.exists(path):
            return None
        try:
            return self.fs.read_bytes(path)
        except (FileNotFoundError, IsADirectoryError):  # tracked by DVC, but not in the workspace or the cache
            self.missing.append(f"{path} (not pulled)")
            return None

    def list_dir(self, path: str) -> list[str]:
        from dvc_data.index.index import DataIndexError

        if not self.fs.exists(path):
            return []
        try:
            return self.fs.ls(path, detail=False)
        except (FileNotFoundError, NotADirectoryError, DataIndexError):  # a DVC-tracked folder whose listing is not here
            self.missing.append(f"{path}/ (not pulled)")
            return []

    def parse(self, path: str, data: bytes, parser):
        """``parser(data)``, or None (noted in ``missing``) when the file is corrupt."""
        try:
            return parser(data)
        except Exception as exc:  # json, YAML and pandas each raise their own parse errors
            self.missing.append(f"{path} (unreadable: {type(exc).__name__})")
            return None


def load_run(repo: Path, exp: str | None) -> Run:
    """Read one run's files: the workspace when ``exp`` is None, else the experiment's revision.

    A file the run lacks is noted in :attr:`Run.missing` (never an error here):
    a fresh clone has the git-tracked metrics and curves but not the sample
    grids, which live in the DVC cache until `dvc pull`.
    """
    import pandas as pd
    from ruamel.yaml import YAML

    files = _RunFiles(open_run_files(repo, exp))

    def parsed(path: str, parser):
        data = files.read(path)
        return None if data is None else files.parse(path, data, parser)

    def table(data: bytes):
        return pd.read_csv(io.BytesIO(data), sep="\t")

    params = parsed("params.yaml", lambda data: YAML(typ="safe", pure=True).load(data))
    metrics = parsed(METRICS_FILE, json.loads)
    if metrics is None and not any(entry.startswith(METRICS_FILE) for entry in files.missing):
        files.missing.append(f"{METRICS_FILE} (not produced)")
    elif metrics is not None and not (isinstance(metrics, dict) and metrics):
        files.missing.append(f"{METRICS_FILE} (holds no metrics)")
    curves = {}
    epoch_of_step = parsed(f"{METRICS_DIR}/epoch.tsv", table)
    for _, names in CURVES:
        for name in names:
            frame = parsed(f"{METRICS_DIR}/{name}.tsv", table)
            if isinstance(frame, pd.DataFrame) and {"step", name} <= set(frame.columns):
                if isinstance(epoch_of_step, pd.DataFrame) and "step" in epoch_of_step:  # epochs read better than steps
                    frame = frame.merge(epoch_of_step, on="step", how="left")
                curves[name] = frame
    run = Run(
        name=exp or "workspace",
        params=params if isinstance(params, dict) else {},
        metrics=normalise_keys(metrics) if isinstance(metrics, dict) else {},
        curves=curves,
        final_grid=files.read("results/evaluate/samples.png"),
    )
    grid_epochs = sorted(
        int(match.group(1)) for match in (_GRID_NAME.fullmatch(Path(p).name) for p in files.list_dir(SAMPLES_DIR)) if match
    )
    for label, epoch in progress_epochs(grid_epochs):
        png = files.read(f"{SAMPLES_DIR}/epoch_{epoch:04d}.png")
        if png is not None:
            run.grids.append((label, epoch, png))

    run.inspection = load_inspection(files.read)
    run.missing = files.missing
    return run


def how_to_get(run: Run) -> str:
    """One sentence: what the run lacks and the DVC command that brings it."""
    where = "the workspace" if run.name == "workspace" else f"experiment {run.name!r}"
    if run.name == "workspace":
        fix = "`dvc pull` fetches what a remote has, `dvc repro` produces what is not produced"
    else:
        fix = (f"`dvc exp pull <git remote> {run.name}` fetches an experiment's outputs (a branch's or commit's: "
               f"`git checkout {run.name}`, then `dvc pull`); `dvc exp apply {run.name}`, then `dvc repro`, reruns it")
    return f"{where} lacks {', '.join(run.missing)}: {fix}."


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


def render(runs: list[Run], web_link: str | None = None) -> str:
    """The whole page as one HTML string; ``web_link``: a paragraph linking to the exported web page, if any."""
    parts = [_HEAD, "<h1>FashionGen report</h1>"]
    if web_link:
        parts.append(web_link)
    if len(runs) > 1:
        parts += ["<h2>Side by side</h2>", _side_by_side(runs)]
    parts.append("<h2>Training curves</h2>")
    for title, names in CURVES:
        png = curve_figure(runs, title, names)
        if png is not None:
            parts.append(_img(png, title))
    for run in runs:
        parts.append(f"<h2>{html.escape(run.name)}</h2>")
        if run.missing:
            parts.append(f"<p class=warn>Missing: {html.escape(how_to_get(run))}</p>")
        parts += ["<h3>Metrics beside the real-data floor</h3>", _metrics_table(run)]
        parts.append("<h3>Samples through training (fixed noise)</h3><div class=grids>")
        for label, epoch, png in run.grids:
            if png is not None:
                parts.append(f"<figure>{_img(png, f'{label}: epoch {epoch}')}<figcaption>{label} (epoch {epoch})</figcaption></figure>")
        parts.append("</div>")
        if run.final_grid is not None:
            parts += ["<h3>Samples scored by the evaluate stage</h3>", _img(run.final_grid, "evaluated samples")]
        if run.inspection is not None:
            parts += render_inspection(run.inspection, run.metrics, _img)
        parts += ["<details><summary>Params</summary>", _params_table(run.params), "</details>"]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(repo: Path, experiments: list[str], out: Path, web: Path | None = None) -> list[Run]:
    """Write the page for the workspace (no ``experiments``) or the named experiments; the runs shown.

    ``web``: the folder of a web export (``fashiongen export --format web``; default ``web/`` in ``repo``);
    when it holds one, the report links to it.

    A run that lacks some files (a fresh clone before `dvc pull`) is shown with
    what it has, and the page says what is missing and how to get it (so does
    :func:`how_to_get`, for the command line).

    Raises:
        FashionGenError: an unknown experiment, no DVC repository, or no run with anything beyond params
            to show (then nothing is written, and an earlier page at ``out`` is kept).
    """
    runs = [load_run(repo, name) for name in experiments] if experiments else [load_run(repo, None)]
    if not any(run.has_results for run in runs):
        raise FashionGenError(f"nothing to report: {' '.join(how_to_get(run) for run in runs)}")
    folder = Path(repo) / DEFAULT_FOLDER if web is None else Path(web)
    with atomic_write(out, "w") as handle:
        handle.write(render(runs, web_page_link(folder, out, Path(repo) / "models" / "generator.pt")))
    return runs


def web_page_link(folder: Path, report: Path, generator: Path) -> str | None:
    """A paragraph linking the report at ``report`` to the page export in ``folder`` (a relative link); None when
    ``folder`` holds none. It says so when the page shows another generator file than ``generator``."""
    meta = read_page_meta(folder)
    if meta is None:
        return None
    target = os.path.relpath(Path(folder).resolve() / PAGE, Path(report).resolve().parent)
    href = html.escape(Path(target).as_posix())
    text = (f'<p class=web>Try this generator in your browser: <a href="{href}">{href}</a> '
            "(runs offline: pick a class, a seed and truncation ψ; walk between two samples)</p>")
    current = file_sha256(generator) if generator.is_file() else None
    if current is not None and current != meta.get("generator_sha256"):
        text += (f"<p class=warn>The page in {html.escape(str(folder))} shows another generator file than "
                 f"{html.escape(str(generator))}; export it again: <code>fashiongen export --format web --out "
                 f"{html.escape(str(folder))}</code></p>")
    return text


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _metrics_table(run: Run) -> str:
    import pandas as pd

    if not run.metrics:
        return f"<p class=note>No metrics: {METRICS_FILE} is missing.</p>"
    rows = []
    for metric in METRICS:
        if metric.key in run.metrics:
            rows.append({"metric": metric.display, "value": _number(run.metrics[metric.key]),
                         "real-data floor": _number(run.metrics.get(metric.floor)) if metric.floor else None,
                         "better": metric.better})
    table = pd.DataFrame(rows).to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="—", border=0)
    accuracy = _number(run.metrics.get("evaluator_accuracy"))
    ruler = html.escape(
        f"evaluator {run.metrics.get('features')} (test accuracy "
        f"{'unrecorded' if accuracy is None else f'{accuracy:.4f}'}), N = {run.metrics.get('num_samples')}"
    )
    return f"{table}<p class=note>Measured with {ruler}.</p>"


def _number(value: Any) -> float | None:
    """A metric value to show: numbers as they are, anything else (a corrupt entry) as missing."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _side_by_side(runs: list[Run]) -> str:
    import pandas as pd

    metrics = [m.key for m in METRICS if any(m.key in run.metrics for run in runs)]
    frame = pd.DataFrame({run.name: [_number(run.metrics.get(m)) for m in metrics] for run in runs}, index=metrics)
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
