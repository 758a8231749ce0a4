"""A busy machine (issue 36): each stage's and command's throughput alone and beside other work, in one run.

In a scratch copy of this checkout's pipeline holding the outputs of a
``dvc repro`` (data, evaluator, encoder, encodings, generator), each workload
runs as its own process, as DVC or a user runs it, under these conditions:

- ``alone``: FashionGen's own choice (fashiongen.runtime: on idle cores,
  libgomp's default spinning);
- ``alone_active`` / ``alone_passive``: ``OMP_WAIT_POLICY=ACTIVE`` / ``PASSIVE``
  (a user's setting is honoured, so these pin the policy);
- ``busy1`` / ``busy2``: beside 1 or 2 ``python -c "while True: pass"``;
- ``busy1_unadapted``: beside 1, with ``GOMP_SPINCOUNT=300000`` (libgomp's
  default written out, so FashionGen does not adapt): what every stage did
  before issue 36;
- ``beside_training``: beside a second FashionGen train stage (in its own
  scratch copy, short epochs so it can adapt) that runs throughout.

Throughput is runs per second of the whole process (start-up, reading and
writing included: what a user waits for). Ratios are against ``alone``; the
bars: ≥ 0.95 alone against ``alone_active``, ≥ 0.45 beside one, ≥ 0.28
beside two and ≥ 0.45 beside a training. ``--repeats N`` interleaves N rounds
and reports medians. The hypervisor's steal share over the whole run comes
from ``/proc/stat``. Run it on an otherwise idle machine, after ``dvc repro``:

    python benchmarks/busy_machine.py --json docs/results/busy_machine.json
    python benchmarks/busy_machine.py --small      # checks the script in a few minutes (figures meaningless)
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import REPO_ROOT, git_revision, machine, write_json

sys.path.insert(0, str(REPO_ROOT / "tests"))
from helpers import copy_pipeline, run  # noqa: E402  (the tests' scratch copy of this checkout's pipeline)

OUTPUTS = ("data/raw", "data/prepared", "data/encodings", "models/evaluator.pt", "models/encoder.pt", "models/generator.pt",
           "models/generator_best.pt", "results")
# Each stage sized to take seconds, not minutes (params.yaml of the scratch copy).
SIZING = {"evaluator": {"epochs": 1, "steps_per_epoch": 120}, "encoder": {"epochs": 1, "steps_per_epoch": 25},
          "train": {"epochs": 1, "steps_per_epoch": 240, "eval_every": 0, "resume": False},
          "evaluate": {"num_samples": 2000}}
ENCODER_SUBSET = 5000  # the encoder stages' copy prepares this many images per split (encode reads them all)
SMALL = {"evaluator": {"epochs": 1, "steps_per_epoch": 10}, "encoder": {"epochs": 1, "steps_per_epoch": 3},
         "train": {"epochs": 1, "steps_per_epoch": 20, "eval_every": 0, "resume": False},
         "evaluate": {"num_samples": 500, "kid_subset_size": 100}, "data": {"subset": 500}}
# name: (the scratch copy it runs in, command). The encoder stages run where model.condition is encoding (at the
# default, label, the encoder is not trained and encode writes nothing).
WORKLOADS = {
    "train": ("default", ["python", "stages/train.py"]),
    "train_evaluator": ("default", ["python", "stages/train_evaluator.py"]),
    "train_encoder": ("encoding", ["python", "stages/train_encoder.py"]),
    "encode": ("encoding", ["python", "stages/encode.py"]),
    "evaluate": ("default", ["python", "stages/evaluate.py"]),
    "generate": ("default", ["fashiongen", "generate", "--n", "1024", "--out", "bench/grid.png"]),
    "report": ("default", ["fashiongen", "report", "--out", "bench/report.html"]),
    "export": ("default", ["fashiongen", "export", "--format", "onnx", "--out", "bench/generator.onnx"]),
    "interpolate": ("default", ["fashiongen", "interpolate", "--n-steps", "64", "--out", "bench/walk.gif"]),
}
CONDITIONS = {  # name: (extra environment, busy loops, beside a training)
    "alone": ({}, 0, False),
    "alone_active": ({"OMP_WAIT_POLICY": "ACTIVE"}, 0, False),
    "alone_passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, 0, False),
    "busy1": ({}, 1, False),
    "busy2": ({}, 2, False),
    "busy1_unadapted": ({"GOMP_SPINCOUNT": "300000"}, 1, False),
    "beside_training": ({}, 0, True),
}
ONLY_FOR = {"busy1_unadapted": {"train"}}  # the before-issue-36 reference: measured on the train stage only
BARS = {"alone": ("alone_active", 0.95), "busy1": ("alone", 0.45), "busy2": ("alone", 0.28),
        "beside_training": ("alone", 0.45)}
BUSY_LOOP = [sys.executable, "-c", "while True: pass"]
SETTLE_S = 1.0  # after starting other work, before the measured process starts


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="much smaller runs: checks the script, not the speed")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved rounds (the median is reported)")
    parser.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--conditions", nargs="+", choices=sorted(CONDITIONS), default=list(CONDITIONS))
    parser.add_argument("--keep", action="store_true", help="keep the scratch repositories (their paths are printed)")
    parser.add_argument("--json", help="also write the results here")
    return parser.parse_args()


def scratch_pipeline(dest: Path, sizing: dict) -> Path:
    """A copy of the pipeline with this checkout's `dvc repro` outputs, sized by ``sizing``."""
    from ruamel.yaml import YAML

    copy_pipeline(dest)
    for name in OUTPUTS:
        source = REPO_ROOT / name
        if not source.exists():
            raise SystemExit(f"{source} is missing: run `dvc repro` first.")
        if source.is_dir():
            shutil.copytree(source, dest / name)
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    yaml = YAML()
    params = yaml.load(dest / "params.yaml")
    for section, values in sizing.items():
        params[section].update(values)
    yaml.dump(params, dest / "params.yaml")
    (dest / "bench").mkdir()
    run(["git", "add", "-A"], dest)  # dvclive records the commit it logs against
    run(["git", "commit", "-qm", "scratch pipeline"], dest)
    return dest


def clean_env() -> dict:
    """This environment without thread or wait settings, this interpreter's bin first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in (
        "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
        "FASHIONGEN_THREADS", "FASHIONGEN_WAIT_POLICY")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def timed(command: list[str], cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall


class OtherWork:
    """Busy loops and/or a FashionGen training running beside the measured process."""

    def __init__(self, loops: int, training: Path | None, env: dict):
        self.processes = [subprocess.Popen(BUSY_LOOP) for _ in range(loops)]
        if training is not None:
            shutil.rmtree(training / "models" / "checkpoints", ignore_errors=True)
            self.processes.append(subprocess.Popen(["python", "stages/train.py"], cwd=training, env=env,
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                   start_new_session=True))
        time.sleep(SETTLE_S if self.processes else 0)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait()


def steal_jiffies() -> tuple[int, int]:
    """(steal, all) jiffies of the machine so far (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[7], sum(fields[:8])


def main() -> None:
    args = parse_args()
    sizing = SMALL if args.small else SIZING
    root = Path(tempfile.mkdtemp(prefix="fashiongen-busy-"))
    env = clean_env()
    try:
        repos = {"default": scratch_pipeline(root / "default", sizing),
                 "encoding": scratch_pipeline(root / "encoding", {**sizing, "model": {"condition": "encoding"},
                                                                  "data": {"subset": ENCODER_SUBSET}})}
        beside = None
        if "beside_training" in args.conditions:  # a long training with short epochs: it can adapt at each epoch's end
            long_run = {**sizing, "train": {**sizing["train"], "epochs": 1000, "steps_per_epoch": 50,
                                                         "resume": True}}
            beside = scratch_pipeline(root / "beside", long_run)
        for copy, command in [("default", "stages/train.py"), ("encoding", "stages/preprocess.py"),
                              ("encoding", "stages/train_encoder.py")]:  # warm caches; the subset; an encoder
            timed(["python", command], repos[copy], env)
        walls: dict[str, dict[str, list[float]]] = {w: {c: [] for c in args.conditions} for w in args.workloads}
        steal_before = steal_jiffies()
        for round_ in range(args.repeats):
            for workload in args.workloads:
                for condition in args.conditions:
                    if workload not in ONLY_FOR.get(condition, {workload}):
                        continue
                    extra, loops, training = CONDITIONS[condition]
                    other = OtherWork(loops, beside if training else None, env)
                    try:
                        copy, command = WORKLOADS[workload]
                        wall = timed(command, repos[copy], {**env, **extra})
                    finally:
                        other.stop()
                    walls[workload][condition].append(wall)
                    print(f"round {round_ + 1} {workload:16s} {condition:16s} {wall:7.2f} s", flush=True)
        steal_after = steal_jiffies()
    finally:
        if args.keep:
            print(f"scratch repositories kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    steal_share = (steal_after[0] - steal_before[0]) / max(1, steal_after[1] - steal_before[1])
    results = {workload: {c: statistics.median(v) for c, v in by_condition.items() if v}
               for workload, by_condition in walls.items()}
    ratios, failures = {}, []
    for workload, medians in results.items():
        ratios[workload] = {}
        for condition, wall in medians.items():
            reference = BARS.get(condition, ("alone", None))[0]
            if reference in medians and condition != reference:
                ratios[workload][condition] = medians[reference] / wall  # throughput ratio
            if condition in BARS and reference in medians and ratios[workload][condition] < BARS[condition][1]:
                failures.append(f"{workload} {condition}: {ratios[workload][condition]:.2f} < {BARS[condition][1]}")

    print(f"\nthroughput as a share of the reference (alone; alone: of alone_active), median of {args.repeats}; "
          f"steal {steal_share:.1%} of the CPU time")
    header = f"{'workload':16s}" + "".join(f"{c:>17s}" for c in args.conditions)
    print(header)
    for workload in args.workloads:
        cells = [(f"{results[workload][c]:6.1f} s" + (f" {ratios[workload][c]:5.2f}x" if c in ratios[workload] else "       "))
                 if c in results[workload] else "-" for c in args.conditions]
        print(f"{workload:16s}" + "".join(f"{cell:>17s}" for cell in cells))
    print("bars met" if not failures else "below a bar: " + "; ".join(failures))
    if args.json:
        write_json(args.json, {"machine": machine(torch.device("cpu")), "revision": git_revision(),
                               "command": " ".join(sys.argv), "small": args.small, "repeats": args.repeats,
                               "sizing": sizing, "steal_share": steal_share, "wall_s": walls, "median_wall_s": results,
                               "ratios": ratios, "bars": BARS, "below_bars": failures})


if __name__ == "__main__":
    main()
