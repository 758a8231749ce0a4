"""A busy machine (issue 36): a fixed thread count, OpenMP's wait policy from the load, the same weights either way."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from fashiongen import runtime
from fashiongen.errors import ConfigError
from fashiongen.runtime import (PASSIVE, SPIN, CpuSample, Load, LoadWatch, compute_threads, configure_compute,
                                cpu_sample, explicit_threads, fair_share, load_between, wait_policy_for)
from helpers import REPO_ROOT, assert_same_weights, generator_weights

BUSY_LOOP = [sys.executable, "-c", "while True: pass"]
OPENMP_VARS = ("FASHIONGEN_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LOCAL_WORLD_SIZE", "LOCAL_RANK",
               "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", runtime.POLICY_ENV, runtime.RESTART_ENV)


@pytest.fixture
def clean_env(monkeypatch):
    """No thread or wait settings from the caller's environment (and whatever a test sets is undone); torch's thread
    count and the active settings restored."""
    for name in OPENMP_VARS:
        monkeypatch.setenv(name, "")  # recorded, so that a value set during the test is removed afterwards
        monkeypatch.delenv(name)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    monkeypatch.setattr(runtime, "_active", None)


@pytest.fixture
def before_torch(clean_env, monkeypatch):
    """As in a fresh stage process: torch not imported yet, so the settings go to the environment."""
    monkeypatch.delitem(sys.modules, "torch")


def load_of(others: float, steal: float = 0.0) -> Load:
    return Load(others=others, steal=steal, window_s=2.0)


@pytest.mark.parametrize(
    "cores, sharers, expected",
    [(2, 1, [2]), (2, 2, [1, 1]), (8, 3, [3, 3, 2]), (16, 4, [4, 4, 4, 4]), (2, 3, [1, 1, 1]), (5, 2, [3, 2])],
)
def test_fair_share_splits_every_core_and_gives_each_at_least_one(cores, sharers, expected):
    shares = [fair_share(cores, sharers, i) for i in range(sharers)]
    assert shares == expected
    assert sum(shares) == max(cores, sharers)


def test_the_thread_count_is_every_core_and_never_follows_the_load(before_torch, monkeypatch):
    monkeypatch.setattr(runtime, "machine_cores", lambda: 4)
    monkeypatch.setattr(runtime, "_sample_load", lambda seconds: load_of(others=3.0))  # a busy machine
    assert compute_threads() == (4, "the 4 cores this process may use")
    settings = configure_compute()
    assert settings.threads == 4 and settings.policy == PASSIVE
    assert os.environ["OMP_NUM_THREADS"] == "4" and os.environ["MKL_NUM_THREADS"] == "4"


def test_once_torch_is_loaded_only_its_thread_count_is_set_and_the_environment_is_left_alone(clean_env, monkeypatch,
                                                                                              caplog):
    monkeypatch.setattr(runtime, "machine_cores", lambda: 3)
    monkeypatch.setattr(runtime, "_sample_load", lambda seconds: load_of(others=1.0))
    with caplog.at_level(logging.INFO, logger="fashiongen.runtime"):
        assert configure_compute().threads == 3 and torch.get_num_threads() == 3
    assert not any(os.environ.get(name) for name in OPENMP_VARS)
    assert "(torch was loaded before: OpenMP keeps the policy it started with)" in caplog.text


def test_torchrun_ranks_split_the_node_and_torchruns_own_one_thread_is_not_a_choice(clean_env, monkeypatch):
    monkeypatch.setattr(runtime, "machine_cores", lambda: 5)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what torchrun sets for every process
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert explicit_threads() is None and compute_threads()[0] == 3
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert compute_threads()[0] == 2


def test_a_pinned_thread_count_wins(clean_env, monkeypatch):
    monkeypatch.setattr(runtime, "machine_cores", lambda: 4)
    monkeypatch.setenv("FASHIONGEN_THREADS", "3")
    assert compute_threads() == (3, "FASHIONGEN_THREADS/OMP_NUM_THREADS")
    monkeypatch.delenv("FASHIONGEN_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # PyTorch's own setting is respected outside torchrun
    assert explicit_threads() == 1


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_malformed_thread_count_is_a_one_line_error(clean_env, monkeypatch, value):
    monkeypatch.setenv("FASHIONGEN_THREADS", value)
    with pytest.raises(ConfigError, match=f"FASHIONGEN_THREADS='{value}' is not a number of threads: set a positive"):
        explicit_threads()


@pytest.mark.parametrize("others, steal, policy", [(0.0, 0.0, SPIN), (0.1, 0.05, SPIN), (1.0, 0.0, PASSIVE),
                                                   (0.2, 0.0, SPIN), (0.0, 0.3, PASSIVE), (2.0, 0.0, PASSIVE)])
def test_other_processes_or_steal_on_the_cores_make_waiting_threads_sleep(others, steal, policy):
    assert wait_policy_for(load_of(others, steal)) == policy


def test_the_load_is_what_others_took_this_process_own_time_subtracted():
    before = CpuSample(wall=10.0, busy=100.0, steal=5.0, own=40.0)
    after = CpuSample(wall=12.0, busy=104.0, steal=5.5, own=42.0)  # 4 s busy of which 2 s ours, over 2 s
    load = load_between(before, after)
    assert load.others == pytest.approx(1.0) and load.steal == pytest.approx(0.25) and load.window_s == pytest.approx(2.0)
    assert "other processes used 1.00 cores and the hypervisor stole 0.25 over 2.0 s" == load.describe()


def test_cpu_sample_reads_the_cores_this_process_may_use(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    stat.write_text("cpu  900 0 900 900 0 0 0 900 0 0\n"
                    "cpu0 100 10 20 500 7 1 2 30 0 0\n"
                    "cpu1 200 0 40 400 0 0 0 50 0 0\n"
                    "cpu7 999 999 999 0 0 0 0 999 0 0\n"
                    "intr 12345\nprocs_running 3\n")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    sample = cpu_sample(stat)
    ticks = os.sysconf("SC_CLK_TCK")
    assert sample.busy == pytest.approx((100 + 10 + 20 + 1 + 2 + 200 + 40) / ticks)  # cpu7 is not ours
    assert sample.steal == pytest.approx(80 / ticks)
    assert cpu_sample(tmp_path / "missing") is None


def test_the_users_wait_setting_is_honoured_and_not_watched(before_torch, monkeypatch, caplog):
    monkeypatch.setattr(runtime, "_sample_load", lambda seconds: pytest.fail("the load is not sampled"))
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    with caplog.at_level(logging.INFO, logger="fashiongen.runtime"):
        settings = configure_compute(restartable=True)
    assert settings.policy is None and settings.watch is None and not settings.restartable
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE" and runtime.POLICY_ENV not in os.environ
    assert "OMP_WAIT_POLICY=ACTIVE is set, so the load is not watched" in caplog.text


@pytest.mark.parametrize("others, policy, omp", [(0.0, SPIN, None), (1.0, PASSIVE, "PASSIVE")])
def test_the_policy_follows_the_load_at_start_and_the_log_says_why(before_torch, monkeypatch, caplog, others, policy, omp):
    monkeypatch.setattr(runtime, "machine_cores", lambda: 2)
    monkeypatch.setattr(runtime, "_sample_load", lambda seconds: load_of(others))
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setenv(runtime.POLICY_ENV, PASSIVE)  # FashionGen's own choice, inherited: chosen afresh
    with caplog.at_level(logging.INFO, logger="fashiongen.runtime"):
        settings = configure_compute()
    assert settings.policy == policy and os.environ.get("OMP_WAIT_POLICY") == omp
    assert os.environ[runtime.POLICY_ENV] == policy
    assert "compute: 2 threads (the 2 cores this process may use); waiting OpenMP threads" in caplog.text
    assert f"other processes used {others:.2f} cores" in caplog.text


def test_a_restarted_process_keeps_the_policy_it_restarted_for(before_torch, monkeypatch):
    monkeypatch.setattr(runtime, "_sample_load", lambda seconds: pytest.fail("the load is not sampled again"))
    monkeypatch.setenv(runtime.RESTART_ENV, PASSIVE)
    monkeypatch.setenv(runtime.POLICY_ENV, PASSIVE)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert configure_compute().policy == PASSIVE
    assert runtime.RESTART_ENV not in os.environ  # a child of this process samples for itself


def test_a_switch_is_wanted_only_after_every_window_asked_for_it():
    watch = LoadWatch(SPIN)
    for others in (1.0, 1.0):
        watch.recent.append(load_of(others))
    assert watch.switch() is None  # two windows are not enough
    watch.recent.append(load_of(0.0))
    assert watch.switch() is None  # one idle window among them
    for _ in range(runtime.SWITCH_AFTER_WINDOWS):
        watch.recent.append(load_of(1.5))
    assert watch.switch().others == 1.5
    assert LoadWatch(PASSIVE, recent=watch.recent).switch() is None  # already passive


def test_only_a_stage_outside_torchrun_restarts(clean_env, monkeypatch):
    monkeypatch.setattr(runtime, "_sample_load", lambda seconds: load_of(0.0))
    settings = configure_compute()  # a command, not a stage
    for _ in range(runtime.SWITCH_AFTER_WINDOWS):
        settings.watch.recent.append(load_of(1.0))
    assert runtime.restart_wanted() is None
    with runtime.stage_compute() as settings:
        for _ in range(runtime.SWITCH_AFTER_WINDOWS):
            settings.watch.recent.append(load_of(1.0))
        assert runtime.restart_wanted().others == 1.0
    assert runtime.restart_wanted() is None  # forgotten when the stage ends
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with runtime.stage_compute() as settings:
        assert not settings.restartable  # torchrun's ranks cannot restart one by one


# A train stage on the blobs of helpers.make_prepared, run as its own process by the stage runner; the weights go
# to NAME/generator.pt. Load windows are shortened so the test does not wait for the real ones, and with a second
# argument the load is read from that file (cores used by others) instead of the kernel, so the test decides when the
# machine turns idle, whatever else the machine runs.
TRAIN_STAGE = textwrap.dedent("""
    import sys
    from pathlib import Path
    from fashiongen import runtime
    runtime.WINDOW_S, runtime.SWITCH_AFTER_WINDOWS = 0.05, 2
    if len(sys.argv) > 2:
        told = lambda: runtime.Load(others=float(Path(sys.argv[2]).read_text()), steal=0.0, window_s=0.05)
        runtime.load_between = lambda before, after: told()
        runtime._sample_load = lambda seconds: told()
    from fashiongen.stage import run_stage

    def main(params):
        from fashiongen.pipeline.train import TrainPaths, train_gan
        root = Path(".")
        train_gan(params, TrainPaths(prepared=root / "prepared", encodings=root / "encodings",
                                     evaluator=root / "evaluator.pt", generator=root / sys.argv[1] / "generator.pt",
                                     best_generator=root / sys.argv[1] / "generator_best.pt",
                                     checkpoints=root / sys.argv[1] / "checkpoints", results=root / sys.argv[1] / "results"))

    run_stage(main, params_path=Path("params.yaml"))
""")


@pytest.fixture
def stage_workdir(train_workdir, venv_env):
    (train_workdir / "train_stage.py").write_text(TRAIN_STAGE)
    (train_workdir / "params.yaml").write_text(textwrap.dedent("""
        model: {g_width: 8, d_width: 8, z_dim: 16}
        train: {epochs: 24, batch_size: 32, log_every: 2, eval_every: 0, device: cpu}
    """))
    env = {k: v for k, v in venv_env.items() if k not in OPENMP_VARS}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return train_workdir, env


def run_stage_process(workdir: Path, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "train_stage.py", *args], cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finished(stage: subprocess.Popen) -> str:
    log = stage.communicate(timeout=300)[0]
    assert stage.returncode == 0, log
    return log


def test_a_training_beside_a_busy_process_waits_passively_and_ends_on_the_weights_of_one_alone(stage_workdir):
    workdir, env = stage_workdir
    alone_log = finished(run_stage_process(workdir, env, "alone"))
    assert "compute: 2 threads" in alone_log or "compute: 1 threads" in alone_log
    busy = subprocess.Popen(BUSY_LOOP)
    try:
        time.sleep(0.5)
        shared_log = finished(run_stage_process(workdir, env, "shared"))
    finally:
        busy.kill()
        busy.wait()
    assert "waiting OpenMP threads sleep at once (OMP_WAIT_POLICY=PASSIVE): other processes used" in shared_log
    assert_same_weights(generator_weights(workdir / "alone" / "generator.pt"),
                        generator_weights(workdir / "shared" / "generator.pt"))


def test_a_training_whose_machine_turns_idle_restarts_with_spinning_and_resumes_on_the_same_weights(stage_workdir):
    workdir, env = stage_workdir
    finished(run_stage_process(workdir, env, "straight"))
    load = workdir / "load"
    load.write_text("1.0")  # a busy machine at the start
    stage = run_stage_process(workdir, env, "restarted", str(load))
    first_checkpoint = workdir / "restarted" / "checkpoints" / "epoch_0002.pt"
    deadline = time.monotonic() + 240
    while not first_checkpoint.exists():
        assert stage.poll() is None and time.monotonic() < deadline, stage.communicate()
        time.sleep(0.02)
    load.write_text("0.0")  # the other work ended
    log = finished(stage)
    assert "waiting OpenMP threads sleep at once (OMP_WAIT_POLICY=PASSIVE): other processes used 1.00 cores" in log
    assert "the machine's load changed (other processes used 0.00 cores" in log and "restarting from the checkpoint" in log
    assert "waiting OpenMP threads spin, then sleep (libgomp's default): chosen before this process restarted" in log
    assert "resuming from" in log and log.count("the machine's load changed") == 1
    assert_same_weights(generator_weights(workdir / "straight" / "generator.pt"),
                        generator_weights(workdir / "restarted" / "generator.pt"))
