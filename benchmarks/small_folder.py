"""A small photo folder through the whole pipeline with the default params: wall and CPU time per stage.

Makes a folder of 3 × ``--per-class`` RGB photos (600 by default: the case of
issue 16, whose test split holds about 60 images), copies this checkout's
pipeline into a fresh git + DVC repository, sets ``data.source: folder`` and
``data.folder`` and nothing else, and runs each stage with ``dvc repro -s``
in pipeline order, timing it (wall, and CPU of the stage's processes). The
result holds the per-stage times, the metrics file (what the evaluation
scored against) and the load average, since a shared machine stretches wall
time but not CPU time.

    python benchmarks/small_folder.py --per-class 200 --json docs/results/small_folder_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import REPO_ROOT, git_revision, machine, write_json

sys.path.insert(0, str(REPO_ROOT / "tests"))
STAGES = ("download", "preprocess", "train_evaluator", "train_encoder", "encode", "train", "evaluate")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=200, help="photos in each of the 3 class folders")
    parser.add_argument("--scratch", help="folder for the photos and the repository (default: a new temporary one)")
    parser.add_argument("--json", help="write the result here")
    return parser.parse_args()


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    from fashiongen.profiles import apply_overrides
    from helpers import copy_pipeline, make_small_photo_folder, run
    from ruamel.yaml import YAML

    args = parse_args()
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="fashiongen-small-folder-"))
    photos = make_small_photo_folder(scratch / "photos", args.per_class)
    repo = copy_pipeline(scratch / "repo")
    yaml = YAML()
    params = yaml.load(repo / "params.yaml")
    with open(repo / "params.yaml", "w") as handle:
        yaml.dump(apply_overrides(params, {"data.source": "folder", "data.folder": str(photos)}), handle)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "a small photo folder"], repo)  # dvclive wants a commit to compare with
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = {"machine": {**machine(torch.device("cpu")), "load_average_before": os.getloadavg()},
              "revision": git_revision(), "images": 3 * args.per_class, "stages": {}}
    for stage in STAGES:
        started, cpu = time.perf_counter(), children_cpu_s()
        done = subprocess.run([sys.executable, "-m", "dvc", "repro", "-s", stage], cwd=repo, env=env,
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"stage {stage} failed:\n{done.stdout}\n{done.stderr}")
        result["stages"][stage] = {"wall_s": round(time.perf_counter() - started, 1),
                                   "cpu_s": round(children_cpu_s() - cpu, 1)}
    result["total_wall_s"] = round(sum(s["wall_s"] for s in result["stages"].values()), 1)
    result["total_cpu_s"] = round(sum(s["cpu_s"] for s in result["stages"].values()), 1)
    result["machine"]["load_average_after"] = os.getloadavg()
    result["prepared"] = json.loads((repo / "data/prepared/meta.json").read_text())["counts"]
    result["metrics"] = json.loads((repo / "results/evaluate/metrics.json").read_text())
    write_json(args.json, result)


if __name__ == "__main__":
    main()
