"""Parallel workers at full speed (issue 20): `dvc queue start -j 2` against `-j 1`, torchrun ×2 against ×1.

In a scratch copy of this checkout's pipeline (tiny profile), after a `dvc repro`
of the shared stages:

1. the queue: two experiments (train and evaluate each; a new seed for every
   run, so no two are the same experiment) with ``dvc queue start -j 1``,
   then two more with ``-j 2``; the wall time from ``queue start`` until both
   finished. Bar: ``-j 2`` takes at most 1.1× the wall time of ``-j 1``.
2. torchrun: ``torchrun --standalone --nproc_per_node=N stages/train.py`` with
   N = 1 and 2 (the train stage alone at the global batch ``--torchrun-batch``,
   in-training FID off, no resume); the median images/s the training logged
   (all ranks together). Bar: 2 processes train at ≥ 0.8× the images/s of 1.

Each stage process runs every core and picks OpenMP's wait policy from the load
(fashiongen.runtime); set nothing (``--oversubscribe`` gives every process every core with libgomp's
default spinning, not adapted to the load, as before issue 20, for a before/after comparison). Run it on an otherwise idle machine:

    python benchmarks/parallel_workers.py --json docs/results/parallel_workers_cpu.json
    python benchmarks/parallel_workers.py --oversubscribe --json docs/results/parallel_workers_cpu_before.json
    python benchmarks/parallel_workers.py --small      # a quick check that it runs (figures meaningless)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import REPO_ROOT, git_revision, machine, write_json

sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))
from fashiongen.profiles import apply_overrides, load_profile  # noqa: E402
from fashiongen.runtime import machine_cores  # noqa: E402
from helpers import copy_pipeline  # noqa: E402  (the tests' scratch copy of this checkout's pipeline)

# --small: a fraction of the tiny profile, to check the script end to end in a few minutes
SMALL = {"data.subset": 400, "evaluator.epochs": 1, "train.epochs": 2, "train.eval_samples": 100,
         "evaluate.num_samples": 200, "evaluate.kid_subset_size": 100}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="a much smaller run: checks the script, not the speed")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of each measurement (the median is reported)")
    parser.add_argument("--torchrun-batch", type=int, default=128,
                        help="global batch of the torchrun runs (128: params.yaml's default; each of 2 processes takes 64)")
    parser.add_argument("--oversubscribe", action="store_true",
                        help="every process takes every core and spins (FASHIONGEN_THREADS=cores, GOMP_SPINCOUNT=300000, "
                        "libgomp's default, not adapted): the behaviour before issue 20")
    parser.add_argument("--keep", action="store_true", help="keep the scratch repository (its path is printed)")
    parser.add_argument("--json", help="also write the results here")
    return parser.parse_args()


def command(args: list[str], cwd: Path, env: dict, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def dvc(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return command([sys.executable, "-m", "dvc", *args], repo, env)


def set_params(repo: Path, overrides: dict) -> None:
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: keeps the comments
    params = yaml.load(repo / "params.yaml")
    with open(repo / "params.yaml", "w") as handle:
        yaml.dump(apply_overrides(params, overrides), handle)


def scratch_pipeline(root: Path, overrides: dict, env: dict) -> Path:
    """A git + DVC repository with this checkout's pipeline, ``overrides`` applied, shared stages run."""
    repo = copy_pipeline(root / "repo")
    set_params(repo, overrides)
    commit(repo, env, "pipeline")  # dvclive wants a commit to exist
    dvc(repo, env, "repro", "train_evaluator", "encode")  # what every experiment shares
    commit(repo, env, "shared stages")  # queued experiments start from this dvc.lock
    return repo


def commit(repo: Path, env: dict, message: str) -> None:
    command(["git", "add", "-A"], repo, env)
    command(["git", "commit", "-qm", message], repo, env)


def queue_wall(repo: Path, env: dict, jobs: int, seeds: tuple[int, int]) -> float:
    """Seconds from `dvc queue start -j JOBS` until both queued experiments finished."""
    for seed in seeds:
        dvc(repo, env, "exp", "run", "--queue", "-n", f"j{jobs}-seed{seed}", "-S", f"train.seed={seed}")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dvc", "queue", "start", "-j", str(jobs)], cwd=repo, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    while True:
        status = dvc(repo, env, "queue", "status").stdout
        if "Failed" in status:
            raise SystemExit("an experiment failed:\n" + status)
        if "Running" not in status and "Queued" not in status:
            return time.perf_counter() - started
        time.sleep(0.5)


def torchrun_images_per_s(repo: Path, env: dict, processes: int) -> dict:
    """The train stage under torchrun with ``processes`` processes: median logged images/s, wall seconds."""
    shutil.rmtree(repo / "models" / "checkpoints", ignore_errors=True)  # train from scratch, no resume
    started = time.perf_counter()
    command([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
             "stages/train.py"], repo, env)
    wall = time.perf_counter() - started
    rows = (repo / "results/train/plots/metrics/images_per_s.tsv").read_text().splitlines()[1:]
    values = [float(row.split("\t")[1]) for row in rows]
    steady = values[1:] or values  # the first window holds the warm-up
    train = json.loads((repo / "results/train/metrics.json").read_text())
    return {"images_per_s": statistics.median(steady), "train_wall_s": train["train_wall_s"], "wall_s": wall}


def main() -> None:
    args = parse_args()
    overrides = {**load_profile("tiny"), **(SMALL if args.small else {})}
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for name in ("FASHIONGEN_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        env.pop(name, None)  # every process makes its own choice
    if args.oversubscribe:
        env.update(FASHIONGEN_THREADS=str(machine_cores()), GOMP_SPINCOUNT="300000")
    root = Path(tempfile.mkdtemp(prefix="fashiongen-parallel-"))
    result: dict = {"machine": machine(torch.device("cpu")), "revision": git_revision(), "small": args.small,
                    "profile": overrides, "repeats": args.repeats,
                    "threads": "every process: all cores" if args.oversubscribe else "each process: its share"}
    try:
        repo = scratch_pipeline(root, overrides, env)
        walls: dict[int, list[float]] = {1: [], 2: []}
        seed = 100
        for _ in range(args.repeats):
            for jobs in (1, 2):
                walls[jobs].append(queue_wall(repo, env, jobs, (seed, seed + 1)))
                seed += 2
                print(f"queue -j {jobs}: {walls[jobs][-1]:.1f} s for two experiments", flush=True)
        queue = {f"j{jobs}_wall_s": statistics.median(times) for jobs, times in walls.items()}
        queue["j2_over_j1"] = queue["j2_wall_s"] / queue["j1_wall_s"]
        result["queue"] = queue

        runs: dict[int, list[dict]] = {1: [], 2: []}
        set_params(repo, {"train.eval_every": 0, "train.batch_size": args.torchrun_batch,
                          "train.log_every": 2 if args.small else 10})
        for _ in range(args.repeats):
            for processes in (1, 2):
                runs[processes].append(torchrun_images_per_s(repo, env, processes))
                print(f"torchrun x{processes}: {runs[processes][-1]['images_per_s']:.0f} images/s", flush=True)
        torchrun = {f"x{n}_images_per_s": statistics.median(r["images_per_s"] for r in rs) for n, rs in runs.items()}
        torchrun["x2_over_x1"] = torchrun["x2_images_per_s"] / torchrun["x1_images_per_s"]
        torchrun["runs"] = {f"x{n}": rs for n, rs in runs.items()}
        result["torchrun"] = torchrun
        result["bars"] = {"queue_j2_within_1.1x_of_j1": queue["j2_over_j1"] <= 1.1,
                          "torchrun_x2_at_least_0.8x_of_x1": torchrun["x2_over_x1"] >= 0.8}
    finally:
        if args.keep:
            print(f"scratch repository kept: {root / 'repo'}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
