"""Each stage process sizes its compute threads to its share of the machine's cores (issue 20, item 4)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from fashiongen import runtime
from fashiongen.errors import ConfigError
from fashiongen.runtime import CoreShare, StageSlots, explicit_threads, fair_share, share_cores

# A stand-in for a sibling stage process: registers a slot in the given folder and holds it until killed.
HOLD_A_SLOT = """
import sys, time
from pathlib import Path
from fashiongen.runtime import StageSlots
slots = StageSlots(Path(sys.argv[1]))
assert slots.register()
print(slots.name, flush=True)
time.sleep(600)
"""


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No thread settings from the caller's environment; slots in a private folder; torch's count restored."""
    for name in ("FASHIONGEN_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LOCAL_WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FASHIONGEN_RUNTIME_DIR", str(tmp_path / "slots"))
    before = torch.get_num_threads()
    yield tmp_path / "slots"
    torch.set_num_threads(before)


def hold_slot(directory):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_SLOT, str(directory)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(runtime.Path(runtime.__file__).parents[1])})
    name = holder.stdout.readline().strip()
    assert name.endswith(".slot"), name
    return holder, name


@pytest.mark.parametrize(
    "cores, sharers, expected",
    [(2, 1, [2]), (2, 2, [1, 1]), (8, 3, [3, 3, 2]), (16, 4, [4, 4, 4, 4]), (2, 3, [1, 1, 1]), (5, 2, [3, 2])],
)
def test_fair_share_splits_every_core_and_gives_each_at_least_one(cores, sharers, expected):
    shares = [fair_share(cores, sharers, i) for i in range(sharers)]
    assert shares == expected
    assert sum(shares) == max(cores, sharers)


def test_a_live_sibling_is_counted_and_a_killed_one_is_not(clean_env):
    mine = StageSlots(clean_env)
    assert mine.register()
    holder, name = hold_slot(clean_env)
    try:
        assert mine.live() == sorted([mine.name, name])
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert mine.live() == [mine.name]  # the kernel dropped the dead process's lock
    assert not (clean_env / name).exists()  # and its stale slot file is gone
    mine.release()
    assert list(clean_env.iterdir()) == []


def test_a_stage_alone_takes_every_core_and_halves_when_a_sibling_starts(clean_env, monkeypatch, caplog):
    monkeypatch.setattr(runtime, "machine_cores", lambda: 4)
    caplog.set_level(logging.INFO, logger="fashiongen.runtime")
    with share_cores() as share:
        assert share.threads == 4 and torch.get_num_threads() == 4
        assert os.environ["OMP_NUM_THREADS"] == "4" and os.environ["MKL_NUM_THREADS"] == "4"
        holder, _ = hold_slot(clean_env)
        try:
            assert share.recount(force=True) == 2 and torch.get_num_threads() == 2
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
        assert share.recount(force=True) == 4 and torch.get_num_threads() == 4  # the cores come back
    assert "compute threads: 4 of 4 cores (1 FashionGen stage process on this machine)" in caplog.text
    assert "compute threads: 4 -> 2 of 4 cores (2 FashionGen stage processes on this machine)" in caplog.text
    assert list(clean_env.iterdir()) == []  # the slot is released when the stage ends


def test_recounts_are_throttled(clean_env, monkeypatch):
    monkeypatch.setattr(runtime, "machine_cores", lambda: 4)
    with share_cores() as share:
        holder, _ = hold_slot(clean_env)
        try:
            runtime.recount_threads()  # within RECOUNT_S of the start: no recount yet
            assert share.threads == 4
            monkeypatch.setattr(share, "_last_count", time.monotonic() - runtime.RECOUNT_S)
            runtime.recount_threads()
            assert share.threads == 2
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()


def test_torchrun_ranks_split_the_node_even_without_slots(clean_env, monkeypatch):
    """LOCAL_WORLD_SIZE is torchrun's count of processes on this node; torchrun's OMP_NUM_THREADS=1 is not a choice."""
    monkeypatch.setattr(runtime, "machine_cores", lambda: 16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert explicit_threads() is None
    share = CoreShare(cores=16, local_world_size=2)  # no slot folder: the count comes from torchrun alone
    assert share.count() == 8 and share.sharers == 2


def test_an_explicit_setting_wins_and_is_never_recounted(clean_env, monkeypatch):
    monkeypatch.setattr(runtime, "machine_cores", lambda: 4)
    monkeypatch.setenv("FASHIONGEN_THREADS", "3")
    with share_cores() as share:
        assert share.fixed == 3 and torch.get_num_threads() == 3
        assert share.recount(force=True) == 3
        assert not clean_env.exists()  # a fixed count takes no slot
    monkeypatch.delenv("FASHIONGEN_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # PyTorch's own setting is respected outside torchrun
    assert explicit_threads() == 1


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_malformed_thread_count_is_a_one_line_error(clean_env, monkeypatch, value):
    monkeypatch.setenv("FASHIONGEN_THREADS", value)
    with pytest.raises(ConfigError, match=f"FASHIONGEN_THREADS='{value}' is not a number of threads: set a positive"):
        explicit_threads()


def test_an_unusable_slot_folder_degrades_to_counting_this_process_alone(clean_env, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FASHIONGEN_RUNTIME_DIR", str(blocker / "slots"))
    monkeypatch.setattr(runtime, "machine_cores", lambda: 2)
    with share_cores() as share:
        assert share.slots.name is None and share.threads == 2


def test_two_stage_processes_started_together_take_one_core_each_of_two(clean_env, tmp_path):
    """Real stage runner, real processes: each sees the other and runs its half of the cores."""
    script = tmp_path / "stage.py"
    script.write_text(
        "import sys, time, torch\n"
        "from fashiongen.stage import run_stage\n"
        "from fashiongen.progress import progress_bar\n"
        "def main(params):\n"
        "    deadline = time.monotonic() + 60\n"
        "    with progress_bar(10**6, 'wait', disable=True) as bar:\n"
        "        while len(list(__import__('pathlib').Path(sys.argv[1]).glob('*.slot'))) < 2:\n"
        "            assert time.monotonic() < deadline\n"
        "            time.sleep(0.05)\n"
        "        time.sleep(__import__('fashiongen.runtime').runtime.RECOUNT_S)\n"
        "        bar.update()\n"
        "        print(torch.get_num_threads(), flush=True)\n"
        "        time.sleep(1)\n"  # hold the slot while the sibling recounts
        "run_stage(main)\n"
    )
    (tmp_path / "params.yaml").write_text("{}\n")
    env = {**os.environ, "PYTHONPATH": str(runtime.Path(runtime.__file__).parents[1])}
    command = [sys.executable, str(script), str(clean_env)]
    stages = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(2)]
    outputs = [stage.communicate(timeout=120) for stage in stages]
    assert [stage.returncode for stage in stages] == [0, 0], outputs
    cores = runtime.machine_cores()
    halves = sorted(str(fair_share(cores, 2, index)) for index in range(2))  # 1 and 1 on 2 cores
    assert sorted(out.strip() for out, _ in outputs) == halves, outputs
