"""One training per workspace: the train stage holds a lock on its work area for as long as it runs.

Two trainings in one workspace (a second ``dvc repro`` while one is still
running, for instance one left orphaned when only the ``dvc`` process was
killed) would write the same checkpoints and logs. The train stage holds an
exclusive ``flock`` on ``models/checkpoints/.training.lock`` while it runs; the
kernel drops it when the process ends, however it ends (SIGKILL included), so
a lock is never stale. The file names its holder (pid, start, command) for the
message a second training gets.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fashiongen.errors import FashionGenError

try:
    import fcntl
except ImportError:  # not POSIX: no lock
    fcntl = None

LOCK_NAME = ".training.lock"


class TrainingRunning(FashionGenError):
    """Another training holds this workspace's work area."""


@contextmanager
def one_training(work_area: Path) -> Iterator[None]:
    """Hold the work area's training lock while the block runs.

    Raises :class:`TrainingRunning`, naming the running training (pid, start,
    command) and what to do, when another process holds it.
    """
    if fcntl is None:
        yield
        return
    work_area.mkdir(parents=True, exist_ok=True)
    handle = open(work_area / LOCK_NAME, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "a process that has not said which yet"
        handle.close()
        raise TrainingRunning(
            f"another training is running in this workspace ({holder}); both would write {work_area}. Wait for it "
            "to end, or stop it (`kill PID`) if it was left running, for instance after only `dvc` was killed; "
            "then run again (it resumes from the last checkpoint)."
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(f"pid {os.getpid()}, started {started}: {' '.join(sys.orig_argv)}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock; the file stays (deleting a lock file races with the next taker)
