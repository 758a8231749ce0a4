"""Start-up costs: the CLI, a stage failing on bad params, and a no-op `dvc repro`.

FashionGen imports torch and friends only inside the functions that need
them, so `fashiongen --help` and the params check at the start of every stage
do not pay for them.

    python benchmarks/startup.py --json docs/startup_cpu.json
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO_ROOT, git_revision, write_json


def wall(cmd: list[str], cwd: Path, repeats: int) -> tuple[float, subprocess.CompletedProcess]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    python = sys.executable
    result: dict = {"revision": git_revision(), "repeats": args.repeats}

    result["python_startup_s"], _ = wall([python, "-c", "pass"], REPO_ROOT, args.repeats)
    result["fashiongen_help_s"], _ = wall([python, "-m", "fashiongen", "--help"], REPO_ROOT, args.repeats)
    result["import_torch_s"], _ = wall([python, "-c", "import torch"], REPO_ROOT, args.repeats)
    _, modules = wall([python, "-c", "import sys, fashiongen.cli, fashiongen.stage; print('torch' in sys.modules)"], REPO_ROOT, 1)
    result["cli_and_stage_runner_import_torch"] = modules.stdout.strip() == "True"

    scratch = Path(tempfile.mkdtemp(prefix="fashiongen-startup-"))
    (scratch / "params.yaml").write_text("train:\n  epoch: 3\n")
    seconds, failed = wall([python, str(REPO_ROOT / "stages" / "train.py")], scratch, args.repeats)
    result["bad_params_stage_exit_s"] = seconds
    result["bad_params_stage_exit_code"] = failed.returncode
    shutil.rmtree(scratch)

    status = subprocess.run([python, "-m", "dvc", "status", "--json"], cwd=REPO_ROOT, capture_output=True, text=True)
    if status.returncode == 0 and status.stdout.strip() in ("{}", ""):
        result["noop_dvc_repro_s"], _ = wall([python, "-m", "dvc", "repro"], REPO_ROOT, args.repeats)
    else:
        result["noop_dvc_repro_s"] = None  # the pipeline is not up to date here: `dvc repro` would run stages
    write_json(args.json, result)


if __name__ == "__main__":
    main()
