"""The report's view of the evaluate stage's analyses (:mod:`fashiongen.analysis.inspection`).

:func:`load_inspection` reads the files the evaluate stage wrote through the
report's reader (any revision), :func:`render_inspection` turns them into
HTML: the nearest-neighbour grid with the copy rate, the class histogram and
under-produced classes, per-class FID bars (conditional models), the
truncation curve and grid, and the interpolation strips. Figures are
matplotlib PNGs; the page embeds them.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fashiongen.analysis.inspection import OUTPUTS

EVALUATE_DIR = "results/evaluate"


@dataclass
class Inspection:
    images: dict[str, bytes] = field(default_factory=dict)  # OUTPUTS key -> png
    per_class: Any = None  # pandas DataFrame of per_class.csv
    truncation: Any = None  # pandas DataFrame of truncation.csv


def load_inspection(read: Callable[[str], bytes | None]) -> Inspection:
    """The analysis files of one run; ``read(path)`` returns a file's bytes or None. Missing files stay missing."""
    import pandas as pd

    found = Inspection()
    for key in ("neighbours", "truncation_grid", "interpolation"):
        data = read(f"{EVALUATE_DIR}/{OUTPUTS[key]}")
        if data is not None:
            found.images[key] = data
    for key in ("per_class", "truncation"):
        data = read(f"{EVALUATE_DIR}/{OUTPUTS[key]}")
        if data is not None:
            setattr(found, key, pd.read_csv(io.BytesIO(data), keep_default_na=False, na_values=[""]))
    return found


def render_inspection(found: Inspection, metrics: dict, img: Callable[[bytes, str], str]) -> list[str]:
    """HTML parts (``img(png, alt)`` embeds an image) for one run; empty when the run has no analyses."""
    parts: list[str] = []
    if "neighbours" in found.images:
        parts += [
            "<h3>Memorisation: samples nearest to a training image</h3>",
            f"<p>{_memorisation_sentence(metrics)}</p>",
            img(found.images["neighbours"], "nearest training images"),
            "<p class=note>Each row: a sample, then its 3 nearest training images (evaluator features); "
            "the 8 samples closest to the training set.</p>",
        ]
    if found.per_class is not None:
        table = found.per_class
        under = ", ".join(html.escape(str(c)) for c in table.loc[table["underproduced"].astype(bool), "class"]) or "none"
        parts += ["<h3>Classes</h3>", img(_class_histogram(table), "class histogram"),
                  f"<p>Under-produced classes (sample share below evaluate.underproduced_ratio × the real share): {under}.</p>"]
        if "fid" in table and table["fid"].notna().any():
            parts.append(img(_bars(table["class"], table["fid"], "Intra-class FID (lower is better)"), "per-class FID"))
    if found.truncation is not None and len(found.truncation):
        parts += ["<h3>Truncation: quality against variety</h3>", img(_truncation_curve(found.truncation), "truncation curve")]
    if "truncation_grid" in found.images:
        parts += [img(found.images["truncation_grid"], "truncation grid"),
                  "<p class=note>The same noise at each ψ, one row per ψ from 1 (no truncation) down.</p>"]
    if "interpolation" in found.images:
        parts += ["<h3>Interpolation</h3>", img(found.images["interpolation"], "interpolation strips"),
                  "<p class=note>Each row a walk: slerp between two noise vectors (unconditional), or from one "
                  "class's condition to another's at fixed noise (conditional models).</p>"]
    return parts


def _memorisation_sentence(metrics: dict) -> str:
    if "copy_rate" not in metrics:
        return ""
    return html.escape(
        f"Copy rate {metrics['copy_rate']:.4f} (real held-out images: {metrics['copy_rate_floor']:.4f}): the share "
        f"of samples nearer to a training image than {metrics['copy_threshold']:.4g}, the "
        f"low percentile of real test images' nearest-training distances. MiFID {metrics.get('mifid', float('nan')):.4g}."
    )


def _figure(width: float = 7, height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, 1, figsize=(width, height), dpi=100)


def _png(figure) -> bytes:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _class_histogram(table) -> bytes:
    import numpy as np

    figure, axis = _figure(7, 0.3 * len(table) + 1.2)
    y = np.arange(len(table))
    axis.barh(y - 0.2, table["sample_share"], height=0.4, label="samples")
    axis.barh(y + 0.2, table["real_predicted_share"], height=0.4, label="real test images")
    axis.set_yticks(y, [str(c) for c in table["class"]])
    axis.invert_yaxis()
    axis.set_xlabel("share (the evaluator's class)")
    axis.legend(fontsize=8)
    return _png(figure)


def _bars(names, values, title: str) -> bytes:
    figure, axis = _figure(7, 0.3 * len(names) + 1.2)
    axis.barh([str(n) for n in names], values)
    axis.invert_yaxis()
    axis.set_title(title)
    return _png(figure)


def _truncation_curve(sweep) -> bytes:
    figure, axis = _figure()
    axis.plot(sweep["psi"], sweep["fid"], marker="o", label="FID")
    axis.set_xlabel("ψ (1 = no truncation)")
    axis.set_ylabel("FID")
    other = axis.twinx()
    other.plot(sweep["psi"], sweep["precision"], marker="s", color="tab:green", label="precision")
    other.plot(sweep["psi"], sweep["recall"], marker="^", color="tab:red", label="recall")
    other.set_ylabel("precision / recall")
    other.set_ylim(0, 1)
    lines = axis.get_legend_handles_labels()[0] + other.get_legend_handles_labels()[0]
    axis.legend(lines, [line.get_label() for line in lines], fontsize=8)
    axis.grid(alpha=0.3)
    return _png(figure)
