"""Whole-pipeline memory: peak resident memory and wall time of every stage on a folder of N photos at 128 px.

Makes N synthetic JPEG "photos" (128 to 192 px, a coloured rectangle on
noise; in three class folders, or all at the top for an unlabelled folder) in
a scratch folder, writes a params.yaml for them, and runs the pipeline's
stage scripts one after the other (``stages/*.py``, the commands of
dvc.yaml), each in a child process that reports its own peak resident memory
(VmHWM: its RSS high-water mark, file-backed pages included) and wall time.
The training stages run one epoch of at most ``--steps`` steps
(``evaluator/encoder/train.steps_per_epoch``): memory, not convergence, is
measured, and N stays the real N (no ``data.subset``). Everything else is
the committed params.yaml: ``data.preload_max_gb`` 2, ``evaluate.num_samples``
10,000. A labelled folder runs with ``model.condition: encoding`` so that
``train_encoder`` and ``encode`` do their real work; an unlabelled one trains
the evaluator on the rotation task.

The bars (issue 22): every stage at most 2.5 GB at N = 50,000 unlabelled;
less than 20% growth from N = 5,000 to 50,000 for every stage, except the
bounded preload (``preloaded_mb``: the images a stage held in memory under
``data.preload_max_gb``, computed from the split sizes as
:class:`fashiongen.data.batches.PreloadBudget` decides).

    nice -n 10 python benchmarks/pipeline_memory.py --n 5000 20000 50000 --json docs/results/pipeline_memory_cpu.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import REPO_ROOT, git_revision, machine, write_json

STAGES = ("download", "preprocess", "train_evaluator", "train_encoder", "encode", "train", "evaluate")
SIZE = 128
BAR_MB = 2500
BAR_GROWTH = 0.20

# Runs one stage script as DVC would (`python stages/<stage>.py` in the repository), then reports this
# process's own peak (VmHWM; getrusage's ru_maxrss would include the parent's size at fork).
CHILD = """
import json, resource, runpy, sys, time
sys.argv = [{script!r}]
start, code = time.perf_counter(), 0
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as exc:
    code = exc.code or 0
wall = time.perf_counter() - start
peak_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
print(json.dumps({{"exit": code, "wall_s": wall, "peak_rss_mb": peak_kb / 1024,
                  "workers_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[5000, 20000, 50000], help="photos per folder")
    parser.add_argument("--kinds", nargs="+", default=["unlabelled", "labelled"], choices=("unlabelled", "labelled"))
    parser.add_argument("--steps", type=int, default=5, help="steps_per_epoch of each training stage (one epoch)")
    parser.add_argument("--scratch", default="/tmp/pipeline_memory", help="scratch folder (deleted after each run)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more params overrides, e.g. evaluate.num_samples=1000 (VALUE as JSON)")
    parser.add_argument("--until", choices=STAGES, default=STAGES[-1],
                        help="stop after this stage (e.g. preprocess: the folder stages alone, in seconds)")
    parser.add_argument("--note", default="", help="how the machine was shared while it ran (kept in the JSON)")
    parser.add_argument("--json", help="also write the figures to this file (rewritten after every run)")
    parser.add_argument("--table", metavar="JSON", help="print docs/benchmarks.md's table of a results file and exit")
    return parser.parse_args()


def table(report: dict) -> str:
    """Markdown: one row per stage, peak RSS (MB) and ms per image for each run, kind by kind."""
    runs = sorted(report["runs"], key=lambda r: (r["kind"], r["n"]))
    lines = []
    for kind in ("unlabelled", "labelled"):
        mine = [r for r in runs if r["kind"] == kind]
        if not mine:
            continue
        head = " | ".join(f"N = {r['n']:,}: peak MB (preloaded), ms/image" for r in mine)
        lines += [f"**{kind}**", "", f"| stage | {head} |", "|---|" + "---|" * len(mine)]
        for stage in STAGES:
            cells = []
            for r in mine:
                f = r["stages"].get(stage)
                if f is None:
                    cells.append("—")  # not run (no encoder without labels, or past --until)
                    continue
                held = f" ({f['preloaded_mb']:.0f})" if f.get("preloaded_mb") else ""
                cells.append(f"{f['peak_rss_mb']:.0f}{held}, {f['ms_per_image']:.2f}")
            lines.append(f"| `{stage}` | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def make_photos(folder: Path, n: int, labelled: bool, seed: int = 0) -> None:
    """``n`` JPEGs of 128 to 192 px: a coloured rectangle on noise; three class folders when ``labelled``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (192, 192, 3), dtype=np.uint8)
    for i in range(n):
        where = folder / f"class_{i % 3}" if labelled else folder
        where.mkdir(parents=True, exist_ok=True)
        w, h = (int(v) for v in rng.integers(SIZE, 193, 2))
        pixels = noise[:h, :w].copy()
        pixels[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = (80 * (i % 3), 120, (37 * i) % 256)
        Image.fromarray(pixels).save(where / f"{i:06d}.jpg", quality=90)


def bench_params(folder: Path, steps: int, labelled: bool, extra: list[str] = ()) -> dict:
    """The overrides of the committed params.yaml (code defaults = params.yaml, tested), then ``extra``."""
    params = {
        "data": {"source": "folder", "folder": str(folder), "image_size": SIZE},
        "evaluator": {"epochs": 1, "steps_per_epoch": steps},
        "encoder": {"epochs": 1, "steps_per_epoch": steps},
        "model": {"condition": "encoding" if labelled else "none"},
        "train": {"epochs": 1, "steps_per_epoch": steps},
    }
    for item in extra:
        key, value = item.split("=", 1)
        section, name = key.split(".", 1)
        params.setdefault(section, {})[name] = json.loads(value)
    return params


def run_stage(stage: str, workdir: Path) -> dict:
    code = CHILD.format(script=str(REPO_ROOT / "stages" / f"{stage}.py"))
    child = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True)
    lines = child.stdout.strip().splitlines()
    if child.returncode or not lines:
        raise RuntimeError(f"{stage} failed ({child.returncode}):\n{child.stderr[-3000:]}")
    figures = json.loads(lines[-1])
    if figures["exit"]:
        raise RuntimeError(f"{stage} exited {figures['exit']}:\n{child.stderr[-3000:]}")
    return figures


def preloaded_mb(stage: str, prepared: Path, budget_gb: float = 2.0) -> float:
    """MB of images ``stage`` holds in memory under the budget (the splits it trains on, train first)."""
    splits = {"train_evaluator": ("train", "test"), "train_encoder": ("train", "test"), "train": ("train",)}.get(stage, ())
    left, held = budget_gb * (1 << 30), 0
    for split in splits:
        nbytes = np.load(prepared / f"{split}_images.npy", mmap_mode="r").nbytes
        if nbytes <= left:
            left -= nbytes
            held += nbytes
    return held / 2**20


def run_pipeline(n: int, kind: str, steps: int, scratch: Path, extra: list[str] = (), until: str = STAGES[-1]) -> dict:
    labelled = kind == "labelled"
    workdir, folder = scratch / f"{kind}_{n}", scratch / f"photos_{kind}_{n}"
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    workdir.mkdir(parents=True)
    try:
        started = time.perf_counter()
        make_photos(folder, n, labelled)
        print(f"{kind} {n}: made the photos in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        (workdir / "params.yaml").write_text(json.dumps(bench_params(folder, steps, labelled, extra), indent=2))
        stages = {}
        for stage in STAGES[: STAGES.index(until) + 1]:
            if stage in ("train_encoder", "encode") and not labelled:
                continue  # placeholders without model.condition: encoding (nothing read)
            figures = run_stage(stage, workdir)
            figures["ms_per_image"] = 1000 * figures["wall_s"] / n
            if stage not in ("download", "preprocess"):
                figures["preloaded_mb"] = preloaded_mb(stage, workdir / "data" / "prepared")
            stages[stage] = figures
            print(f"{kind} {n} {stage}: {figures['peak_rss_mb']:.0f} MB, {figures['wall_s']:.1f} s", file=sys.stderr, flush=True)
        meta = workdir / "data" / "prepared" / "meta.json"
        counts = json.loads(meta.read_text())["counts"] if meta.exists() else None
        return {"n": n, "kind": kind, "steps": steps, "overrides": list(extra), "counts": counts, "stages": stages,
                "complete": until == STAGES[-1]}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


def bars(runs: list[dict]) -> dict:
    """Whether each bar is met, by stage, from the runs done so far."""
    found = {(r["kind"], r["n"]): r["stages"] for r in runs}
    complete = {(r["kind"], r["n"]) for r in runs if r.get("complete", True)}
    out = {}
    if ("unlabelled", 50000) in complete:
        peaks = {s: f["peak_rss_mb"] for s, f in found[("unlabelled", 50000)].items()}
        out["unlabelled_50k_max_peak_rss_mb"] = max(peaks.values())
        out["unlabelled_50k_under_2_5_gb"] = all(v <= BAR_MB for v in peaks.values())
    for kind in ("unlabelled", "labelled"):
        if (kind, 5000) in found and (kind, 50000) in found:
            small, big = found[(kind, 5000)], found[(kind, 50000)]
            growth = {}
            for stage in small.keys() & big.keys():
                grown = big[stage]["peak_rss_mb"] / small[stage]["peak_rss_mb"] - 1
                # the bounded preload grows with N up to data.preload_max_gb, by design: measured without it too
                without = ((big[stage]["peak_rss_mb"] - big[stage].get("preloaded_mb", 0))
                           / (small[stage]["peak_rss_mb"] - small[stage].get("preloaded_mb", 0)) - 1)
                growth[stage] = {"growth": grown, "growth_without_preload": without}
            out[f"{kind}_growth_5k_to_50k"] = growth
            out[f"{kind}_growth_under_20_percent"] = all(
                min(g["growth"], g["growth_without_preload"]) < BAR_GROWTH for g in growth.values())
    return out


def main() -> None:
    args = parse_args()
    if args.table:
        print(table(json.loads(Path(args.table).read_text())))
        return
    import torch

    scratch = Path(args.scratch)
    runs = []
    for kind in args.kinds:
        for n in args.n:
            runs.append(run_pipeline(n, kind, args.steps, scratch, args.set, args.until))
            report = {"benchmark": "pipeline_memory", "machine": machine(torch.device("cpu")), "revision": git_revision(),
                      "command": " ".join(["python", "benchmarks/pipeline_memory.py", *sys.argv[1:]]),
                      "note": args.note,
                      "runs": runs, "bars": bars(runs)}
            if args.json:
                Path(args.json).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    write_json(args.json, report)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
