"""Training throughput: FashionGen beside the textbook loop, in one run.

Measures, interleaved over several repeats (median reported):

- ``reference``: the textbook DCGAN loop (benchmarks/textbook.py): torchvision
  FashionMNIST + DataLoader(num_workers=2) + per-item ToTensor/Normalize;
- ``fashiongen_step``: FashionGen's own loop (``fashiongen.gan.training.batches``
  + ``GANTrainer.step``) on the in-memory uint8 dataset;
- with ``--cpu-bf16``, also ``fashiongen_step_cpu_bf16``: the same under bf16
  autocast (``train.cpu_bf16``, CPUs with AVX512-BF16/AMX);

then runs FashionGen's train stage (``python stages/train.py``, one epoch, the
same model and batch size) as a whole process and reports its images/s over
the process's whole wall time (start-up, data loading, FID and checkpoint
included) and its peak RSS. Model FLOPs per image come from FlopCounterMode on
FashionGen's step; MFU = images/s × FLOPs/image / measured matmul peak, the
float32 peak for float32 loops and the bf16 peak for bf16 ones.

Needs the pipeline's data and evaluator: run ``dvc repro train_evaluator`` first.

    python benchmarks/train_throughput.py --json docs/train_throughput_cpu.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import REPO_ROOT, flops_per_call, git_revision, images_per_second, machine, matmul_peak, sync, write_json
from textbook import TextbookLoop, textbook_dataloader


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--g-width", type=int, default=64)
    parser.add_argument("--d-width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--compile", action="store_true", help="torch.compile FashionGen's networks")
    parser.add_argument("--no-amp", action="store_true", help="no bf16 autocast on GPU")
    parser.add_argument("--cpu-bf16", action="store_true",
                        help="on CPU, also measure FashionGen under bf16 autocast (train.cpu_bf16), step and stage")
    parser.add_argument("--skip-stage", action="store_true", help="do not time the train stage as a process")
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args()


def fashiongen_loop(args, device, compile: bool, cpu_bf16: bool = False):
    """FashionGen's step over its in-memory dataset, built exactly as the train stage builds it."""
    from fashiongen.config import parse_params
    from fashiongen.data.prepared import load_prepared
    from fashiongen.gan.conditions import condition_kind, load_conditions
    from fashiongen.gan.training import batches, build_trainer

    params = parse_params(
        {
            "model": {"g_width": args.g_width, "d_width": args.d_width},
            "train": {"batch_size": args.batch_size, "compile": compile, "amp": not args.no_amp,
                      "cpu_bf16": cpu_bf16},
        }
    )
    data = load_prepared(REPO_ROOT / "data" / "prepared")
    images = torch.from_numpy(data.split("train", mmap=False).images).to(device)
    _, trainer = build_trainer(params, data.channels, data.image_size, device)
    conditions = load_conditions(condition_kind("none"), data.split("train").labels, data.num_classes, Path(), device)
    stream = _forever(lambda: batches(images, args.batch_size, trainer.rng, conditions))
    return lambda: trainer.step(*next(stream))


def reference_loop(args, device):
    loop = TextbookLoop(args.g_width, args.d_width, device)
    loader = textbook_dataloader(REPO_ROOT / "data" / "raw", args.batch_size, pin_memory=device.type == "cuda")
    stream = _forever(lambda: iter(loader))
    return lambda: loop.step(next(stream)[0])


def _forever(make_iterator):
    while True:
        yield from make_iterator()


def time_stage(args, device, cpu_bf16: bool = False) -> dict:
    """Run the train stage for one epoch in a scratch folder; wall time and peak RSS of the process."""
    scratch = Path(tempfile.mkdtemp(prefix="fashiongen-stage-"))
    for name in ("stages", "fashiongen"):
        os.symlink(REPO_ROOT / name, scratch / name)
    (scratch / "data").mkdir()
    os.symlink(REPO_ROOT / "data" / "prepared", scratch / "data" / "prepared")
    (scratch / "models").mkdir()
    os.symlink(REPO_ROOT / "models" / "evaluator.pt", scratch / "models" / "evaluator.pt")
    from ruamel.yaml import YAML

    from fashiongen.profiles import apply_overrides

    yaml = YAML(typ="safe", pure=True)
    params = apply_overrides(
        yaml.load((REPO_ROOT / "params.yaml").read_text()),
        {
            "model.g_width": args.g_width,
            "model.d_width": args.d_width,
            "train.batch_size": args.batch_size,
            "train.epochs": 1,
            "train.device": device.type,
            "train.compile": args.compile,
            "train.amp": not args.no_amp,
            "train.cpu_bf16": cpu_bf16,
        },
    )
    with open(scratch / "params.yaml", "w") as handle:
        yaml.dump(params, handle)
    log = scratch / "train.log"
    start = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "stages/train.py"], cwd=scratch, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the train stage failed; see {log}")
    from fashiongen.data.prepared import load_prepared

    n_images = len(load_prepared(REPO_ROOT / "data" / "prepared").split("train")) // args.batch_size * args.batch_size
    shutil.rmtree(scratch)
    return {"wall_s": wall, "images": n_images, "images_per_s": n_images / wall, "max_rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    args = parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    for needed in ("data/raw/train-images-idx3-ubyte", "data/prepared/meta.json", "models/evaluator.pt"):
        if not (REPO_ROOT / needed).exists():
            raise SystemExit(f"{needed} is missing: run `dvc repro train_evaluator` first.")

    amp = device.type == "cuda" and not args.no_amp
    cpu_bf16 = args.cpu_bf16 and device.type == "cpu"
    peaks_seen = [matmul_peak(device)]  # measured again later: the machine's speed drifts
    peak_bf16 = matmul_peak(device, torch.bfloat16) if amp or cpu_bf16 else None
    flops = flops_per_call(fashiongen_loop(args, device, compile=False)) / args.batch_size  # counted eagerly
    loops = {"reference": reference_loop(args, device),
             "fashiongen_step": fashiongen_loop(args, device, compile=args.compile)}
    if cpu_bf16:
        loops["fashiongen_step_cpu_bf16"] = fashiongen_loop(args, device, compile=args.compile, cpu_bf16=True)
    for step in loops.values():  # warm-up: DataLoader workers, allocator, oneDNN primitives, compilation
        for _ in range(5):
            step()
    sync(device)
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.repeats):
        for name, step in loops.items():
            rates[name].append(images_per_second(step, args.batch_size, args.steps, device))
    peaks_seen.append(matmul_peak(device))
    stages = {}
    if not args.skip_stage:
        stages["fashiongen_stage"] = time_stage(args, device)
        if cpu_bf16:
            stages["fashiongen_stage_cpu_bf16"] = time_stage(args, device, cpu_bf16=True)
    peaks_seen.append(matmul_peak(device))
    peak = max(peaks_seen)  # the best the machine did: the conservative denominator for MFU

    def peak_of(name: str) -> float:
        """The matmul peak of the loop's arithmetic: bf16 for the cpu_bf16 loops and, with amp on a GPU, for all of ours."""
        return peak_bf16 if name.endswith("_cpu_bf16") or (amp and name != "reference") else peak

    result = {
        "machine": machine(device),
        "revision": git_revision(),
        "config": {"batch_size": args.batch_size, "g_width": args.g_width, "d_width": args.d_width,
                   "steps": args.steps, "repeats": args.repeats, "compile": args.compile,
                   "amp_bf16": amp, "cpu_bf16": cpu_bf16},
        "flops_per_image": flops,
        "matmul_peak_flops": peak,
        "matmul_peak_flops_measurements": peaks_seen,
        "matmul_peak_flops_bf16": peak_bf16,
    }
    reference = statistics.median(rates["reference"])
    for name, values in rates.items():
        median = statistics.median(values)
        result[name] = {"images_per_s": values, "median": median,
                        "mfu": median * flops / peak_of(name)}
        if name != "reference":
            result[f"ratio_{name.removeprefix('fashiongen_')}_vs_reference"] = median / reference
    for name, stage in stages.items():
        stage["mfu"] = stage["images_per_s"] * flops / peak_of(name)
        result[name] = stage
        result[f"ratio_{name.removeprefix('fashiongen_')}_vs_reference"] = stage["images_per_s"] / reference
    write_json(args.json, result)


if __name__ == "__main__":
    main()
