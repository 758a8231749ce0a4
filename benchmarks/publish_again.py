"""What a change a finished run cannot see costs (issue 37 item 4): wall time of the rerun, and whether anything changed.

Runs in a workspace whose pipeline is up to date and whose train stage's
finished run is in ``models/checkpoints/`` (after ``dvc repro``). Three
changes DVC reruns the train stage for, one after the other, each undone
afterwards (the edited module, params.yaml and dvc.lock restored from git):

- ``comment``: a comment appended to ``fashiongen/gan/losses.py``, then ``dvc repro``;
- ``unused-param``: ``dvc exp run -S model.clusters=7 -S model.gp_weight=3.0``
  (params a label model with the rpgan loss does not use);
- ``used-param`` (only with ``--used``, it trains for real): ``dvc exp run -S
  model.embed_dim=31``, to show the contrast.

The experiments it makes (``bench-*``) are removed at the end.

For each: the wall time of the DVC command, which stages ran, whether the
published outputs (generator files, results/) are byte-identical, and the
train stage's log line that says what it did.

    python benchmarks/publish_again.py --json docs/results/publish_again.json
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from common import REPO_ROOT, git_revision, machine, write_json

OUTPUTS = ("models/generator.pt", "models/generator_best.pt", "results/train", "results/evaluate")
EDITED = "fashiongen/gan/losses.py"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--used", action="store_true", help="also change a used param (retrains: minutes)")
    parser.add_argument("--json", help="write the result here")
    return parser.parse_args()


def outputs() -> dict[str, str]:
    """sha256 of every published output file, by path."""
    files = []
    for name in OUTPUTS:
        path = REPO_ROOT / name
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {str(p.relative_to(REPO_ROOT)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def dvc(*args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=REPO_ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout + done.stderr


def restore() -> None:
    subprocess.run(["git", "checkout", "--", EDITED, "params.yaml", "dvc.lock"], cwd=REPO_ROOT, check=True)


def measure(name: str, before: dict[str, str], command: list[str]) -> dict:
    wall, log = dvc(*command)
    said = re.findall(r"fashiongen\.pipeline\.train: (.*(?:publishing it again|training from scratch|resuming).*)", log)
    result = {
        "change": name,
        "command": "dvc " + " ".join(command),
        "wall_s": round(wall, 2),
        "stages_run": re.findall(r"Running stage '(\w+)'", log),
        "outputs_identical": outputs() == before,
        "train_said": said[0] if said else None,
    }
    print(result, flush=True)
    return result


def main() -> None:
    args = parse_args()
    _, status = dvc("status")
    if "changed" in status:
        raise SystemExit(f"the pipeline is not up to date; run `dvc repro` first:\n{status}")
    before = outputs()
    results = []
    try:
        with open(REPO_ROOT / EDITED, "a", encoding="utf-8") as handle:
            handle.write("\n# a comment: changes nothing training does\n")
        results.append(measure("comment", before, ["repro"]))
        restore()
        results.append(measure("unused-param", before,
                               ["exp", "run", "-n", "bench-unused-param", "-S", "model.clusters=7",
                                "-S", "model.gp_weight=3.0"]))
        restore()
        if args.used:
            results.append(measure("used-param", before,
                                   ["exp", "run", "-n", "bench-used-param", "-S", "model.embed_dim=31"]))
            restore()
    finally:
        restore()
        for name in ("bench-unused-param", "bench-used-param"):  # the experiments it made, not the user's
            subprocess.run([sys.executable, "-m", "dvc", "exp", "remove", name], cwd=REPO_ROOT, capture_output=True)
    # the workspace's outputs: those of the committed dvc.lock again (a used-param run changed them)
    dvc("checkout")
    result = {"benchmark": "publish_again", "revision": git_revision(), "machine": machine(torch.device("cpu")),
              "results": results}
    if args.json:
        write_json(Path(args.json), result)


if __name__ == "__main__":
    main()
