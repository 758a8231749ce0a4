"""Process-wide settings of the compute stages on CPU: freed memory kept, a fixed thread count, and OpenMP's wait policy
chosen from the machine's load."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, MutableMapping, NoReturn

from fashiongen.errors import ConfigError

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


# --- Compute threads and OpenMP's wait policy ---------------------------------------------------
#
# A stage process runs one fixed number of compute threads: the cores it may use (its CPU
# affinity), split over torchrun's processes on the node, or the count the user pins. The count
# never follows the load, because it decides how PyTorch's kernels split their floating-point sums
# (one and two threads train to different weights): a run's weights do not depend on what else
# ran beside it.
#
# What follows the load is how an OpenMP thread that has finished its part waits for the rest of
# its team. libgomp's default spins for about 300,000 pause loops (milliseconds) before it sleeps.
# On cores nobody else wants, that spinning is what makes the team fast: sleeping instead
# (OMP_WAIT_POLICY=PASSIVE) costs a quarter to a third of the training steps on 2 cores. On cores
# shared with any other busy process it is ruinous: a thread whose partner was descheduled burns
# its time slice spinning, and the team gets a fifth of its fair share. No spin count in between
# is good at both (docs/benchmarks.md, "A busy machine"). So each process measures, from the
# kernel's CPU accounting (/proc/stat, the hypervisor's steal included), how much of its cores
# other processes use, and starts with libgomp's default spinning on idle cores and with passive
# waiting on shared ones. OpenMP reads the policy once, when torch loads it; a stage process run
# by `run_stage` keeps watching (every WINDOW_S, from its progress bars), and the train stage,
# when the other policy has been the right one for SWITCH_AFTER_WINDOWS windows in a row,
# checkpoints at the end of the epoch and restarts itself with it, resuming bit-identically.

THREADS_ENV = "FASHIONGEN_THREADS"
POLICY_ENV = "FASHIONGEN_WAIT_POLICY"  # the policy FashionGen set (so OMP_WAIT_POLICY is not taken for the user's)
RESTART_ENV = "FASHIONGEN_RESTARTED_FOR"  # set for a process that restarted itself: the policy it restarted for
SPIN, PASSIVE = "spin", "passive"
SHARED_FROM_CORES = 0.25  # cores' worth of time other processes (or the hypervisor) take before the cores count as shared
WINDOW_S = 2.0
SWITCH_AFTER_WINDOWS = 3
STARTUP_SAMPLE_S = 0.2
_THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_USER_WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
_PROC_STAT = Path("/proc/stat")

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
                f"stage use every core it may run on."
            )
        return int(value)
    return None


def _torchrun_ranks() -> tuple[int, int]:
    """(processes torchrun started on this node, this one's index among them); (1, 0) outside torchrun."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1))), max(0, int(os.environ.get("LOCAL_RANK", 0) or 0))
    except ValueError:
        return 1, 0


def compute_threads() -> tuple[int, str]:
    """This process's compute threads and why: the user's count, else its cores (split over torchrun's ranks).

    Depends on the environment and the CPU affinity only, never on the load,
    so reruns on one machine take the same sums. Raises ConfigError for a
    malformed ``FASHIONGEN_THREADS``/``OMP_NUM_THREADS``.
    """
    fixed = explicit_threads()
    if fixed is not None:
        return fixed, f"{THREADS_ENV}/OMP_NUM_THREADS"
    cores = machine_cores()
    world, rank = _torchrun_ranks()
    if world > 1:
        return fair_share(cores, world, rank), f"local rank {rank}'s share of {cores} cores among torchrun's {world}"
    return cores, f"the {cores} cores this process may use"


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU times at one moment, in seconds: of the cores this process may use, and of this process.

    ``busy`` is the cores' non-idle time (user, nice, system, irq, softirq;
    summed over the cores), ``steal`` the time the hypervisor ran something
    else on them, ``own`` this process's user + system time (all threads).
    """

    wall: float
    busy: float
    steal: float
    own: float


def cpu_sample(stat_path: Path = _PROC_STAT) -> CpuSample | None:
    """Read :class:`CpuSample` from the kernel's accounting (``/proc/stat``); None where there is none (not Linux)."""
    try:
        lines = stat_path.read_text().splitlines()
        cpus = os.sched_getaffinity(0)
    except (OSError, AttributeError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    busy = steal = 0
    for line in lines:
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        user, nice, system, _idle, _iowait, irq, softirq, stolen = (int(v) for v in (fields + ["0"] * 8)[:8])
        busy += user + nice + system + irq + softirq  # guest time is part of user
        steal += stolen
    times = os.times()
    return CpuSample(wall=time.monotonic(), busy=busy / ticks, steal=steal / ticks, own=times.user + times.system)


@dataclass(frozen=True)
class Load:
    """What others took of this process's cores over a window, in cores on average (0 .. cores)."""

    others: float  # other processes' CPU time ÷ the window
    steal: float  # the hypervisor's steal ÷ the window
    window_s: float

    @property
    def shared(self) -> bool:
        return self.others + self.steal >= SHARED_FROM_CORES

    def describe(self) -> str:
        return (f"other processes used {self.others:.2f} cores and the hypervisor stole {self.steal:.2f} "
                f"over {self.window_s:.1f} s")


def load_between(before: CpuSample, after: CpuSample) -> Load:
    """The :class:`Load` of the window between two samples (this process's own time subtracted)."""
    window = max(after.wall - before.wall, 1e-6)
    others = (after.busy - before.busy) - (after.own - before.own)
    return Load(others=max(0.0, others / window), steal=max(0.0, (after.steal - before.steal) / window),
                window_s=window)


def wait_policy_for(load: Load) -> str:
    """``passive`` on cores others use (a waiting thread sleeps), ``spin`` on idle ones (libgomp's default)."""
    return PASSIVE if load.shared else SPIN


def user_wait_setting() -> str | None:
    """The user's own OpenMP wait setting as ``NAME=value`` (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``, ``KMP_BLOCKTIME``).

    None when none is set, or when the one set is FashionGen's own (``FASHIONGEN_WAIT_POLICY``).
    """
    if os.environ.get(POLICY_ENV):
        return None
    for name in _USER_WAIT_VARS:
        if os.environ.get(name, "").strip():
            return f"{name}={os.environ[name].strip()}"
    return None


def set_wait_policy(policy: str, env: MutableMapping[str, str]) -> None:
    """Write ``policy``'s OpenMP variables into ``env`` (spin: libgomp's default, nothing set; passive: PASSIVE)."""
    env[POLICY_ENV] = policy
    if policy == PASSIVE:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        env.pop("OMP_WAIT_POLICY", None)


@dataclass
class LoadWatch:
    """Measures the load every ``WINDOW_S`` and remembers the last ``SWITCH_AFTER_WINDOWS`` windows."""

    policy: str
    last: CpuSample | None = None
    recent: deque = field(default_factory=lambda: deque(maxlen=SWITCH_AFTER_WINDOWS))

    def poll(self) -> None:
        """Close a window when ``WINDOW_S`` has passed since the last (cheap otherwise)."""
        now = time.monotonic()
        if self.last is not None and now - self.last.wall < WINDOW_S:
            return
        sample = cpu_sample()
        if sample is None:
            return
        if self.last is not None:
            self.recent.append(load_between(self.last, sample))
        self.last = sample

    def switch(self) -> Load | None:
        """The latest load when every remembered window asked for the other policy, else None."""
        if len(self.recent) == self.recent.maxlen and all(wait_policy_for(load) != self.policy for load in self.recent):
            return self.recent[-1]
        return None


@dataclass
class ComputeSettings:
    """What :func:`configure_compute` chose: threads, and the wait policy (None: the user's own setting)."""

    threads: int
    policy: str | None
    restartable: bool = False
    watch: LoadWatch | None = None

    def describe(self, why_threads: str, why_policy: str) -> str:
        waits = {SPIN: "spin, then sleep (libgomp's default)", PASSIVE: "sleep at once (OMP_WAIT_POLICY=PASSIVE)",
                 None: "as the environment says"}[self.policy]
        return f"compute: {self.threads} threads ({why_threads}); waiting OpenMP threads {waits}: {why_policy}"


_active: ComputeSettings | None = None


def configure_compute(restartable: bool = False) -> ComputeSettings:
    """Set this process's compute threads and OpenMP wait policy, and log what was chosen and why.

    Call it before torch is imported: it then writes ``OMP_NUM_THREADS``,
    ``MKL_NUM_THREADS`` and the policy's variables into the environment, which
    OpenMP reads when torch loads it. After that, only the thread count
    applies (``torch.set_num_threads``) and the environment is left alone.
    The user's ``OMP_WAIT_POLICY``/``GOMP_SPINCOUNT``/``KMP_BLOCKTIME`` is
    honoured and never adapted; otherwise the load is sampled for
    ``STARTUP_SAMPLE_S``. ``restartable``: this process may restart itself
    for the other policy (:func:`restart_wanted`), as a stage run by
    ``run_stage`` outside torchrun may. Raises ConfigError for a malformed
    thread count.
    """
    global _active
    threads, why_threads = compute_threads()
    user = user_wait_setting()
    restarted_for = os.environ.pop(RESTART_ENV, None)
    if user is not None:
        policy, why = None, f"{user} is set, so the load is not watched"
    elif restarted_for in (SPIN, PASSIVE):
        policy, why = restarted_for, "chosen before this process restarted itself for it"
    else:
        load = _sample_load(STARTUP_SAMPLE_S)
        policy = wait_policy_for(load) if load is not None else SPIN
        why = load.describe() if load is not None else "no CPU accounting here (/proc/stat), so as on idle cores"
    torch = sys.modules.get("torch")
    if torch is None:  # OpenMP and MKL read these when torch is first imported
        for name in _THREAD_ENV_VARS:
            os.environ[name] = str(threads)
        if policy is not None:
            set_wait_policy(policy, os.environ)
    else:  # in-process use (a notebook, the tests): the environment no longer reaches OpenMP, so it stays as it is
        torch.set_num_threads(threads)
        if policy is not None:
            why += " (torch was loaded before: OpenMP keeps the policy it started with)"
    world, _ = _torchrun_ranks()
    settings = ComputeSettings(threads, policy, restartable=restartable and policy is not None and world == 1)
    if policy is not None:
        settings.watch = LoadWatch(policy, last=cpu_sample())
    _log.info("%s", settings.describe(why_threads, why))
    _active = settings
    return settings


@contextmanager
def stage_compute() -> Iterator[ComputeSettings]:
    """For the length of a stage: :func:`configure_compute` with restarts allowed; forgotten when the stage ends."""
    global _active
    try:
        yield configure_compute(restartable=True)
    finally:
        _active = None


def _sample_load(seconds: float) -> Load | None:
    before = cpu_sample()
    if before is None:
        return None
    time.sleep(seconds)
    after = cpu_sample()
    return load_between(before, after) if after is not None else None


def watch_load() -> None:
    """Close a load window if one is due (cheap; called on the main thread as work advances, by the progress bars)."""
    if _active is not None and _active.watch is not None:
        _active.watch.poll()


def restart_wanted() -> Load | None:
    """The load that asks this restartable stage process to restart with the other wait policy, else None."""
    if _active is None or not _active.restartable or _active.watch is None:
        return None
    return _active.watch.switch()


def restart_with_other_policy() -> NoReturn:
    """Replace this process by the same command with the other wait policy (``os.execve``: same pid, same pipes).

    The caller has saved everything the new process needs to resume.
    """
    assert _active is not None and _active.policy is not None
    policy = PASSIVE if _active.policy == SPIN else SPIN
    env = dict(os.environ)
    set_wait_policy(policy, env)
    env[RESTART_ENV] = policy
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)
