"""What a dataset needs for the whole pipeline to run on it, checked before any training.

A photo folder that cannot work (a condition that needs classes it lacks,
an entry DVC cannot hash, too few images to score, a class the training split
never shows, an evaluation param the folder is too small for) is refused by the ``download`` stage, from the folder's manifest, in seconds,
with a fix that works, instead of failing in ``evaluate`` after every training
stage has run. ``preprocess`` checks again on the images that really decoded
(an unreadable file counts as absent) and under its own params
(``data.test_fraction``, ``data.subset``): from the manifest before decoding,
so a params change is refused with the previous ``data/prepared`` untouched,
and on what decoded after writing; ``evaluate`` checks its params
(:func:`fashiongen.real_set.plan_real_set`).

What is *not* refused: a training split smaller than ``train.batch_size`` (a
step then uses every training image, like the evaluator's and encoder's
training already did) and classes of uneven size (``data.subset`` fills the
quota of a short class from the others).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fashiongen.config import Params, condition_needs_labels, trained_condition
from fashiongen.data.folder import read_manifest
from fashiongen.data.folder_scan import DANGLING_LINK, UNREADABLE, display_path
from fashiongen.data.prepare import balanced_first_n
from fashiongen.data.prepared import load_prepared
from fashiongen.errors import DataError
from fashiongen.real_set import real_set_problems


def dataset_problems(train_labels: np.ndarray, n_test: int, classes: list[str], labelled: bool, params: Params) -> list[str]:
    """Why the pipeline cannot run on splits with these training labels and test count; empty when it can.

    ``train_labels``: int class index of every training image; ``classes``:
    class names by index; ``labelled``: whether the classes are real (class
    subfolders) rather than the single class of an unlabelled folder.
    """
    problems = []
    n_train = len(train_labels)
    if n_test == 0 or n_train < 2:
        problems.append(
            f"the split holds {n_train} training and {n_test} test images (data.test_fraction="
            f"{params.data.test_fraction}); both splits need images (training at least 2): "
            "change data.test_fraction or add images"
        )
    problems += real_set_problems(n_train, n_test, params.evaluate.num_samples, params.evaluate.pr_neighbours)
    if labelled and n_train:
        present = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=len(classes))
        absent = [name for name, count in zip(classes, present) if count == 0]
        if absent:
            problems.append(
                f"class(es) {', '.join(repr(name) for name in absent)} have no image in the training split (all "
                "held out for testing by data.test_fraction, or dropped by data.subset): the evaluator cannot "
                "learn them; add images to those class folders (or remove the folders)"
            )
    return problems


def require_trainable(where: str, train_labels, n_test: int, classes, labelled: bool, params: Params) -> None:
    """Raise a :class:`DataError` listing every problem of :func:`dataset_problems`, naming ``where``."""
    problems = dataset_problems(np.asarray(train_labels), n_test, list(classes), labelled, params)
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise DataError(f"{where} cannot be trained on and scored with these params:\n{lines}")


def condition_on_data(condition: str, labelled: bool) -> tuple[str, str | None]:
    """What ``model.condition`` trains on data with or without class labels, and why it cannot (None when it can)."""
    trained = trained_condition(condition, labelled)
    labels = "the data has class labels" if labelled else "the data has no class labels"
    what = f"{condition} trains a {trained} model ({labels})" if trained != condition else f"{condition} ({labels})"
    if condition_needs_labels(condition, labelled) and not labelled:
        return what, (f"model.condition={condition} needs classes, but the folder has none (put the images in two or "
                      "more first-level subfolders, or set model.condition: auto or cluster, which need none)")
    return what, None


def folder_problems(manifest, condition: str) -> list[str]:
    """Why the pipeline cannot run on a folder, from its file list alone: refused by ``download`` in seconds.

    The condition needs classes the folder lacks, or DVC cannot hash the
    folder (it stops at an entry it cannot read, a symbolic link to nothing,
    a name that is not UTF-8), which would fail ``dvc repro`` before any stage.
    """
    problems = []
    _, problem = condition_on_data(condition, manifest.labelled)
    if problem:
        problems.append(problem)

    def listed(paths: list[str]) -> str:
        return f"{', '.join(display_path(p) for p in paths[:3])}{', ...' if len(paths) > 3 else ''}"

    unreadable = [p.path for p in manifest.skipped if UNREADABLE in p.reason]
    if unreadable:
        problems.append(f"{len(unreadable)} entr{'y' if len(unreadable) == 1 else 'ies'} cannot be read "
                        f"({listed(unreadable)}): DVC stops while hashing the folder; give yourself read access "
                        "(chmod u+r, and u+x for folders) or move them out (docs/troubleshooting.md)")
    dangling = [p.path for p in manifest.skipped if p.reason == DANGLING_LINK]
    if dangling:
        problems.append(f"{len(dangling)} symbolic link(s) point nowhere ({listed(dangling)}): DVC stops while "
                        "hashing the folder; delete them (docs/troubleshooting.md)")
    not_utf8 = [p for p in all_paths(manifest) if not _is_utf8(p)]
    if not_utf8:
        problems.append(f"{len(not_utf8)} name(s) are not valid UTF-8 ({listed(not_utf8)}): DVC cannot hash the "
                        "folder; rename them (docs/troubleshooting.md)")
    return problems


def all_paths(manifest) -> list[str]:
    """Every entry the folder's scan met: images, skipped, not images and ignored."""
    return sorted(manifest.paths + [p.path for p in manifest.skipped]
                  + manifest.not_images + [p.path for p in manifest.ignored])


def _is_utf8(path: str) -> bool:
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def manifest_problems(manifest, params: Params, readable: np.ndarray | None = None) -> list[str]:
    """:func:`folder_problems`, then :func:`dataset_problems` of the manifest split and subset as ``preprocess`` does.

    ``readable`` (bool, one per image of the manifest), when given, keeps only
    those images (``check-folder``: the ones that decoded).
    """
    data = params.data
    held_out, labels = manifest.held_out(data.test_fraction), manifest.labels
    if readable is not None:
        held_out, labels = held_out[readable], labels[readable]
    train_labels, n_test = labels[~held_out], int(held_out.sum())
    if data.subset is not None:
        if data.subset < len(train_labels):
            train_labels = train_labels[balanced_first_n(train_labels, data.subset, len(manifest.classes))]
        n_test = min(n_test, data.subset)
    return folder_problems(manifest, params.model.condition) + dataset_problems(
        train_labels, n_test, list(manifest.classes), manifest.labelled, params)


def require_trainable_manifest(manifest, params: Params) -> None:
    """The download stage's check of a scanned folder, split and subset as ``preprocess`` will do it.

    Every listed image counts as readable here; ``preprocess`` repeats the
    check on the images that decode.
    """
    problems = manifest_problems(manifest, params)
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise DataError(f"data.folder={params.data.folder} cannot be trained on and scored with these params:\n{lines}")


def require_trainable_raw(raw_dir: Path, params: Params) -> None:
    """The preprocess stage's check before it decodes anything: the folder's manifest under its params."""
    if params.data.source == "folder":
        require_trainable_manifest(read_manifest(raw_dir), params)


def require_trainable_prepared(prepared_dir: Path, params: Params) -> None:
    """The preprocess stage's check of what it wrote (only the images that decoded)."""
    data = load_prepared(prepared_dir)
    where = f"data.folder={params.data.folder}" if params.data.source == "folder" else "the prepared data"
    require_trainable(where, data.split("train").labels, len(data.split("test")), data.classes, data.labelled, params)
