"""Atomic file writes: a reader sees the old file or the whole new one, never half.

Every output FashionGen produces (arrays, models, metrics, images) goes through
:func:`atomic_write`: the bytes go to a temporary file beside the target, are
fsynced, and the temporary file is renamed over the target. A process killed
at any moment leaves at worst a stray ``.*.tmp`` file, never a truncated output
that a later stage would take as valid. Inside a stage, each replacement is
first checked against the stage's inputs (:func:`checked_before_publishing`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterator

_publish_checks: list[Callable[[], None]] = []


@contextlib.contextmanager
def checked_before_publishing(check: Callable[[], None]) -> Iterator[None]:
    """While the block runs, every write and swap here calls ``check()`` before it replaces its target.

    An exception from ``check`` (a stage's inputs changed under it:
    :mod:`fashiongen.stage_inputs`) leaves the target as it was and removes
    the temporary file or folder.
    """
    _publish_checks.append(check)
    try:
        yield
    finally:
        _publish_checks.remove(check)


def _before_publishing() -> None:
    for check in _publish_checks:
        check()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; outputs get the usual permissions instead.
_FILE_MODE = 0o666 & ~_current_umask()
_DIR_MODE = 0o777 & ~_current_umask()


@contextlib.contextmanager
def atomic_write(path: Path | str, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on success, rename it to ``path``.

    If the body raises, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    os.chmod(tmp, _FILE_MODE)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _before_publishing()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


@contextlib.contextmanager
def atomic_directory(path: Path | str) -> Iterator[Path]:
    """Fill a temporary folder beside ``path``; on success, swap it in for ``path``.

    The previous folder stays whole until the new one is complete, so a stage
    that fails half way leaves its previous output as it was. (DVC keeps
    outputs declared ``persist: true`` in place while a stage runs; this is
    what makes that safe.)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(staging, _DIR_MODE)
    try:
        yield staging
        _before_publishing()
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = path.parent / f"{staging.name}.old"
    if path.exists():
        os.replace(path, retired)
    os.replace(staging, path)
    shutil.rmtree(retired, ignore_errors=True)
    _fsync_directory(path.parent)


@contextlib.contextmanager
def staged_files(folder: Path | str) -> Iterator[Path]:
    """Write several output files into a temporary folder beside ``folder``; on success move each into ``folder``.

    For a stage whose outputs are several files in one folder (the evaluate
    stage's metrics, grids and tables): if the body raises, none of them
    changes. Each file is moved with an atomic rename, all at the end, so the
    only window in which old and new files sit together is that of the renames.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".staged.", suffix=".tmp"))
    os.chmod(staging, _DIR_MODE)
    try:
        yield staging
        _before_publishing()
        for path in sorted(staging.iterdir()):
            os.replace(path, folder / path.name)
        _fsync_directory(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def reset_directory(path: Path | str) -> Path:
    """Empty ``path`` (creating it if needed): for outputs rebuilt from scratch by a stage."""
    path = Path(path)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself (best effort: not every filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path: Path | str, data: Any) -> None:
    """Write ``data`` as pretty, key-sorted JSON (stable diffs in git)."""
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_write(path) as handle:
        handle.write(data)


def save_torch(path: Path | str, obj: Any) -> None:
    """``torch.save`` through an atomic write."""
    import torch

    with atomic_write(path) as handle:
        torch.save(obj, handle)


def save_npy(path: Path | str, array: Any) -> None:
    """``numpy.save`` through an atomic write (the file stays memory-mappable)."""
    import numpy as np

    with atomic_write(path) as handle:
        np.save(handle, array, allow_pickle=False)


def save_npz(path: Path | str, **arrays: Any) -> None:
    import numpy as np

    with atomic_write(path) as handle:
        np.savez_compressed(handle, **arrays)
