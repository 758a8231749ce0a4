"""Process-wide settings that make the compute stages faster on CPU: freed memory kept, threads sized to a share of the cores."""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from fashiongen.errors import ConfigError

try:
    import fcntl
except ImportError:  # not POSIX: no slots, each process counts itself alone
    fcntl = None

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Ask glibc to reuse freed memory instead of handing it back to the kernel.

    A training step frees and re-allocates the same activation-sized buffers
    every time. With glibc's defaults those buffers are unmapped on free and
    every reuse faults their pages in again: about 10,000 page faults and 27 ms
    of kernel time per step of the 64/64 DCGAN at batch 128 on the 2-core
    reference machine. Raising the mmap and trim thresholds keeps the memory in
    the heap (0 faults per step). Returns False where this is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mmap_ok = mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # buffers up to 32 MB come from the heap
    trim_ok = mallopt(_M_TRIM_THRESHOLD, 512 << 20)  # keep up to 512 MB of freed heap for reuse
    return bool(mmap_ok and trim_ok)


# --- Compute threads: each stage process takes its share of the machine's cores ---------------
#
# PyTorch starts as many compute threads as the machine has cores in every process. Two stage
# processes on one machine (`dvc queue start -j 2`, `torchrun --nproc_per_node=2`, an evaluator
# training beside a GAN training) then run twice as many threads as there are cores, and
# oversubscribed OpenMP threads spin waiting on each other: on 2 cores two trainings ran at
# 5.2 steps/s each against 18.9 for one alone. So every stage process registers itself in a
# per-user directory of slot files and sizes its thread pool to its share of the cores; a slot
# is an flock'ed file, so a process that dies (even by SIGKILL) releases it. The share is
# recounted on the main thread at most every RECOUNT_S while a progress bar advances (OpenMP's
# thread count is per calling thread: a helper thread could not change it), so a process that
# started alone gives cores up when a sibling starts, and takes them back when it ends.
# The count changes the order of floating-point sums: bit-identical reruns need the same count
# (a run alone, or FASHIONGEN_THREADS pinned).

THREADS_ENV = "FASHIONGEN_THREADS"
RUNTIME_DIR_ENV = "FASHIONGEN_RUNTIME_DIR"
RECOUNT_S = 2.0
_THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

_log = logging.getLogger(__name__)


def machine_cores() -> int:
    """The cores this process may run on: its CPU affinity (taskset, a container's cpuset), else the host's count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def fair_share(cores: int, sharers: int, index: int) -> int:
    """Threads of sharer ``index`` (0-based) among ``sharers``: an equal split of ``cores``.

    The remainder goes one core each to the first sharers, so no core idles
    (3 sharers of 8 cores: 3, 3, 2); never fewer than 1.
    """
    base, extra = divmod(cores, max(1, sharers))
    return max(1, base + (1 if index < extra else 0))


def runtime_dir() -> Path:
    """Where the slot files live: ``$FASHIONGEN_RUNTIME_DIR``, else a per-user folder in the temp dir."""
    configured = os.environ.get(RUNTIME_DIR_ENV)
    if configured:
        return Path(configured)
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"fashiongen-{uid}" / "stages"


class StageSlots:
    """One slot file per live FashionGen stage process on this machine.

    A process holds an exclusive ``flock`` on its own slot for as long as it
    runs; the kernel drops the lock when the process ends, however it ends, so
    a slot whose lock can be taken belongs to a dead process and is removed.
    Slots are named ``<pid>-<random>.slot``; every process sorts the live ones
    the same way, which gives each its index for :func:`fair_share`.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.name: str | None = None
        self._handle = None

    def register(self) -> bool:
        """Create and lock this process's slot; False (and no slot) where the folder is unusable."""
        if fcntl is None:
            return False
        handle = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = tempfile.NamedTemporaryFile(dir=self.directory, prefix=".new-", delete=False)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            name = f"{os.getpid()}-{secrets.token_hex(4)}.slot"
            os.replace(handle.name, self.directory / name)  # locked before it is visible: never taken for stale
        except OSError as exc:
            _log.debug("no slot in %s (%s); counting this process alone", self.directory, exc)
            if handle is not None:
                handle.close()
                Path(handle.name).unlink(missing_ok=True)
            return False
        self.name, self._handle = name, handle
        return True

    def live(self) -> list[str]:
        """Names of the slots of running processes, sorted; stale slots are deleted on the way."""
        try:
            names = sorted(p.name for p in self.directory.glob("*.slot"))
        except OSError:
            return [self.name] if self.name else []
        return [name for name in names if name == self.name or self._held(self.directory / name)]

    @staticmethod
    def _held(path: Path) -> bool:
        try:
            with open(path, "rb") as handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True  # its process is running
                path.unlink(missing_ok=True)  # we hold the dead process's lock: nobody else can be using it
                return False
        except OSError:
            return False

    def release(self) -> None:
        if self._handle is None:
            return
        try:
            (self.directory / self.name).unlink(missing_ok=True)
        finally:
            self._handle.close()
            self._handle, self.name = None, None


@dataclass
class CoreShare:
    """How many compute threads this process runs, and why.

    ``fixed`` is the explicit setting (``FASHIONGEN_THREADS``, or
    ``OMP_NUM_THREADS`` outside torchrun), which is never recounted.
    Otherwise the share is ``machine_cores()`` split over the larger of
    torchrun's ``LOCAL_WORLD_SIZE`` (the processes it started on this node)
    and the live stage slots.
    """

    cores: int
    fixed: int | None = None
    local_world_size: int = 1
    slots: StageSlots | None = None
    threads: int = 0
    sharers: int = 1
    _last_count: float = field(default=0.0, repr=False)
    _interop_sized: bool = field(default=False, repr=False)

    def count(self) -> int:
        """Recount the sharers and return this process's thread count (does not apply it)."""
        if self.fixed is not None:
            return self.fixed
        live = self.slots.live() if self.slots is not None else []
        index = live.index(self.slots.name) if self.slots is not None and self.slots.name in live else 0
        self.sharers = max(self.local_world_size, len(live), 1)
        if self.local_world_size > len(live):  # slots unusable: torchrun's count, this rank's place in it
            index = int(os.environ.get("LOCAL_RANK", 0) or 0)
        return fair_share(self.cores, self.sharers, index)

    def apply(self, threads: int) -> None:
        """Use ``threads`` compute threads from now on (torch's intra-op pool, OpenMP, MKL)."""
        if threads == self.threads:
            return
        previous, self.threads = self.threads, threads
        for name in _THREAD_ENV_VARS:  # read by OpenMP and MKL when torch is first imported
            os.environ[name] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        if previous:
            _log.info("compute threads: %d -> %d of %d cores (%d FashionGen stage processes on this machine)",
                      previous, threads, self.cores, self.sharers)
        else:
            why = f"{THREADS_ENV}/OMP_NUM_THREADS" if self.fixed is not None else (
                f"{self.sharers} FashionGen stage process{'es' if self.sharers > 1 else ''} on this machine")
            _log.info("compute threads: %d of %d cores (%s)", threads, self.cores, why)

    def recount(self, force: bool = False) -> int:
        """Recount and apply, at most every RECOUNT_S unless ``force``; the threads in use."""
        now = time.monotonic()
        if self.fixed is None and (force or now - self._last_count >= RECOUNT_S):
            self._last_count = now
            self.apply(self.count())
        self._size_interop_pool()
        return self.threads

    def _size_interop_pool(self) -> None:
        """Once torch is imported: its inter-op pool (torch.jit.fork, not eager ops) no larger than the share."""
        if self._interop_sized or "torch" not in sys.modules:
            return
        self._interop_sized = True
        try:
            sys.modules["torch"].set_num_interop_threads(self.threads)
        except RuntimeError:  # the pool already started; it can be sized only once, before first use
            pass


_active: CoreShare | None = None


def explicit_threads() -> int | None:
    """The thread count the user set, if any: ``FASHIONGEN_THREADS``, or ``OMP_NUM_THREADS`` outside torchrun.

    torchrun sets ``OMP_NUM_THREADS=1`` for every process it starts when it is
    unset, so under torchrun (``LOCAL_WORLD_SIZE`` set) only
    ``FASHIONGEN_THREADS`` counts. Raises ConfigError for a value that is not
    a positive integer.
    """
    names = [THREADS_ENV] if "LOCAL_WORLD_SIZE" in os.environ else [THREADS_ENV, "OMP_NUM_THREADS"]
    for name in names:
        value = os.environ.get(name, "").strip()
        if not value:
            continue
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(
                f"{name}={value!r} is not a number of threads: set a positive integer, or unset it to let each "
                f"stage take its share of the machine's cores."
            )
        return int(value)
    return None


def _local_world_size() -> int:
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    except ValueError:
        return 1


@contextmanager
def share_cores() -> Iterator[CoreShare]:
    """For the length of a stage: register this process and size its compute threads to its share.

    Call it before torch is imported (the thread count then also reaches
    OpenMP and MKL through their environment variables). Raises ConfigError
    for a malformed ``FASHIONGEN_THREADS``.
    """
    global _active
    share = CoreShare(cores=machine_cores(), fixed=explicit_threads(), local_world_size=_local_world_size())
    if share.fixed is None:
        share.slots = StageSlots(runtime_dir())
        share.slots.register()
        share.recount(force=True)
    else:
        share.apply(share.fixed)
    _active = share
    try:
        yield share
    finally:
        _active = None
        if share.slots is not None:
            share.slots.release()


def recount_threads() -> None:
    """Resize this process's compute threads if the number of stage processes changed (cheap; throttled).

    Called on the main thread as training advances (by the progress bars); a
    no-op outside a stage.
    """
    if _active is not None:
        _active.recount()
