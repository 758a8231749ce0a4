"""One training per workspace (issue 37 item 7): a second training refuses, naming the one that runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from fashiongen.gan.run_lock import one_training
from test_stage_inputs import stage_repo, wait_for  # noqa: F401  (a fixture and a helper shared with those tests)


def test_a_second_training_in_the_workspace_is_refused_and_a_killed_one_holds_nothing(stage_repo):  # noqa: F811
    root, env = stage_repo
    first = subprocess.Popen([sys.executable, "train.py"], cwd=root, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(root / "run" / "checkpoints" / "epoch_0001.pt", first)
        second = subprocess.run([sys.executable, "train.py"], cwd=root, env=env, capture_output=True, text=True)
        assert second.returncode == 2, second.stderr
        assert f"error: another training is running in this workspace (pid {first.pid}, started " in second.stderr
        assert "train.py); both would write run/checkpoints. Wait for it to end, or stop it (`kill PID`)" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)  # as an orphaned training is ended by hand
        first.wait()
    work = root / "run" / "checkpoints"
    with one_training(work):  # the kernel dropped the killed process's lock; this process holds it now
        child = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path\n"
                                "from fashiongen.gan.run_lock import one_training\n"
                                "with one_training(Path(sys.argv[1])): pass", str(work)],
                               env=env, capture_output=True, text=True)
    assert child.returncode != 0
    assert f"TrainingRunning: another training is running in this workspace (pid {os.getpid()}, started" in child.stderr
    with one_training(work):  # released when the block ended
        pass
