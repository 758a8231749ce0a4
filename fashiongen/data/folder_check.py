"""``fashiongen check-folder PATH``: what the pipeline would make of a photo folder, before any training.

It reads the folder with the pipeline's own code (the download stage's scan,
``preprocess``'s split and decoding, ``meta.json``'s file accounting) and writes
nothing. Per class: images, their sizes and modes, the train/test split; then
every file that would be skipped or ignored, with the reason; then warnings.
The folder "would train" when both splits hold a readable image, the classes
suit ``model.condition``, and DVC can hash the folder (DVC 3 stops at a name
that is not UTF-8 and at a symbolic link to nothing, although FashionGen's own
stages read the one and skip the other).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from fashiongen.config import DEFAULT_FOLDER_SIZE, Params
from fashiongen.data.folder import (
    DECODE_SKIPPED,
    USED,
    Manifest,
    account_for_files,
    decode_all,
    describe_layout,
    decode_jobs,
    default_workers,
    scan_folder,
)
from fashiongen.data.folder_scan import display_path
from fashiongen.data.requirements import condition_on_data, manifest_problems
from fashiongen.progress import progress_bar

MIN_CLASS_IMAGES = 20  # below this a class is too small to learn or to score


@dataclass
class ClassReport:
    images: int = 0
    train: int = 0
    test: int = 0
    widths: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)
    modes: collections.Counter = field(default_factory=collections.Counter)


@dataclass
class FolderReport:
    """The check's findings: per-class figures, skipped files, warnings and problems (which stop training)."""

    manifest: Manifest
    classes: dict[str, ClassReport]
    skipped: list[dict]
    files: dict
    warnings: list[str]
    problems: list[str]
    condition: str  # what model.condition trains on this folder, and why

    @property
    def would_train(self) -> bool:
        return not self.problems


def check_folder(root: Path, params: Params) -> FolderReport:
    """Scan and decode ``root`` as ``download`` and ``preprocess`` would with ``params``; writes nothing.

    Raises :class:`~fashiongen.errors.DataError` when ``root`` is not a folder or holds no image.
    """
    data = params.data
    manifest = scan_folder(root)
    size, channels = data.image_size or DEFAULT_FOLDER_SIZE, data.channels or 3
    background = tuple(data.alpha_background)
    jobs = decode_jobs(manifest, range(len(manifest)), root, size, channels, background)
    classes = {name: ClassReport() for name in manifest.classes}
    skipped = [{"path": p.path, "reason": p.reason} for p in manifest.skipped]
    held_out = manifest.held_out(data.test_fraction)
    fate = np.zeros(len(manifest), dtype=np.int8)
    results = progress_bar(len(manifest), "check", iterable=decode_all(jobs, default_workers(data.workers)))
    for i, decoded in enumerate(results):
        if decoded.image is None:
            skipped.append({"path": manifest.paths[i], "reason": decoded.problem})
            fate[i] = DECODE_SKIPPED
            continue
        report = classes[manifest.classes[manifest.labels[i]]]
        report.images += 1
        report.test += bool(held_out[i])
        report.train += not held_out[i]
        report.widths.append(decoded.width)
        report.heights.append(decoded.height)
        report.modes[decoded.mode] += 1
        fate[i] = USED
    skipped.sort(key=lambda s: s["path"])
    files = account_for_files(manifest, skipped, fate)
    problems = manifest_problems(manifest, params, readable=fate == USED)  # the pipeline's own refusals (requirements.py)
    condition, _ = condition_on_data(params.model.condition, manifest.labelled)
    return FolderReport(manifest, classes, skipped, files, folder_warnings(manifest, classes, params), problems, condition)


def folder_warnings(manifest: Manifest, classes: dict[str, ClassReport], params: Params) -> list[str]:
    """What may disappoint about a scanned and decoded folder, without stopping the pipeline."""
    warnings = []
    for name, report in classes.items():
        if report.images < MIN_CLASS_IMAGES:
            warnings.append(f"class {display_path(name)} has {report.images} readable image(s), fewer than "
                            f"{MIN_CLASS_IMAGES}: too few to learn or to score that class.")
    for paths in duplicates_across_classes(manifest):
        warnings.append(f"the same file is in {len({p.split('/', 1)[0] for p in paths})} classes: "
                        f"{', '.join(display_path(p) for p in paths)}")
    test = sum(c.test for c in classes.values())
    num_samples = params.evaluate.num_samples
    if 0 < test < num_samples:
        warnings.append(f"the test split holds {test} images (data.test_fraction={params.data.test_fraction}), "
                        f"fewer than evaluate.num_samples={num_samples}: evaluate scores against the full set "
                        "(docs/metrics.md), where a generator that copies its training images scores well.")
    return warnings


def duplicates_across_classes(manifest: Manifest) -> list[list[str]]:
    """Paths of byte-identical files that sit in more than one class, one list per content."""
    if not manifest.labelled:
        return []
    by_content = collections.defaultdict(list)
    for i, digest in enumerate(manifest.digests):
        by_content[digest.tobytes()].append(i)
    return [[manifest.paths[i] for i in group] for group in by_content.values()
            if len({int(manifest.labels[i]) for i in group}) > 1]


def print_report(root: Path, report: FolderReport, echo: Callable[[str], None] = print) -> None:
    """The report as text: a table per class, every unused file with its reason, warnings, the verdict."""
    files, manifest = report.files, report.manifest
    echo(f"{display_path(str(root))}: {len(manifest.classes)} class(es); {files['used']} images used, "
         f"{files['skipped']} skipped, {files['not_images']} not images, {files['ignored']} ignored")
    echo(f"classes: {describe_layout(manifest)['why']}")
    echo(f"model.condition: {report.condition}")
    echo("")
    echo(f"{'class':<24} {'images':>6} {'train':>6} {'test':>5}  {'sizes (W×H)':<23} modes")
    for name, c in report.classes.items():
        sizes = (f"{min(c.widths)}..{max(c.widths)} × {min(c.heights)}..{max(c.heights)}" if c.images else "-")
        modes = ", ".join(f"{mode} {n}" for mode, n in sorted(c.modes.items())) or "-"
        echo(f"{display_path(name):<24} {c.images:>6} {c.train:>6} {c.test:>5}  {sizes:<23} {modes}")
    sections = (
        ("skipped (not readable as images)", [(s["path"], s["reason"]) for s in report.skipped]),
        ("not images (not used)", [(p, "not an image by content or name") for p in manifest.not_images]),
        ("ignored (leftovers, hidden entries, loose images)", [(p.path, p.reason) for p in manifest.ignored]),
    )
    for title, rows in sections:
        if rows:
            echo("")
            echo(f"{title}: {len(rows)}")
            for path, reason in rows:
                echo(f"  {display_path(path)}: {reason}")
    for label, lines in (("warning", report.warnings), ("problem", report.problems)):
        if lines:
            echo("")
            for line in lines:
                echo(f"{label}: {line}")
    echo("")
    echo("would train: yes" if report.would_train else "would train: no (fix the problems above)")
