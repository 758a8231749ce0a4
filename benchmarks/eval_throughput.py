"""Evaluation throughput: sampling, feature extraction and the metrics themselves.

Times the pieces of the evaluate stage on the pipeline's real outputs
(models/generator.pt, models/evaluator.pt, data/prepared): generating N images,
extracting the evaluator's features and logits of N images (both in large
batches under inference mode), and computing FID, KID, IS and precision/recall
on N-sample feature sets. Medians over repeats. Then runs the evaluate stage
as a whole process. With ``--inception-weights PATH`` it also times the FID
Inception-V3 (``evaluate.features: inception``) on ``--inception-n`` images
and its FID on 2048-d features.

    python benchmarks/eval_throughput.py --json docs/eval_throughput_cpu.json
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

from common import REPO_ROOT, git_revision, machine, sync, write_json


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10000, help="images per set (evaluate.num_samples)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--inception-weights", type=Path, help="also time the FID Inception-V3 with these weights")
    parser.add_argument("--inception-n", type=int, default=200, help="images for the Inception timing")
    parser.add_argument("--skip-stage", action="store_true", help="do not time the evaluate stage as a process")
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args()


def time_inception(weights: Path, real: torch.Tensor, n: int, batch_size: int, device, repeats: int) -> dict:
    """Images/s of the FID Inception-V3 (resize to 299 px included) and its FID time on 2048-d features."""
    from fashiongen.metrics.inception import InceptionFeatures
    from fashiongen.metrics.scores import frechet_distance

    inception = InceptionFeatures(weights, device)
    images = real[:n]
    inception.extract(images[: min(8, n)], batch_size)  # warm-up: oneDNN/cuDNN pick their kernels
    seconds, (features, _) = timed(lambda: inception.extract(images, batch_size), device, repeats)
    half = len(features) // 2
    return {
        "inception_n": len(images),
        "inception_images_per_s": len(images) / seconds,
        "inception_fid_2048_s": timed(lambda: frechet_distance(features[:half], features[half:]), device, 1)[0],
    }


def timed(fn, device, repeats):
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def time_stage() -> float:
    scratch = Path(tempfile.mkdtemp(prefix="fashiongen-evaluate-"))
    for name in ("stages", "fashiongen", "params.yaml"):
        os.symlink(REPO_ROOT / name, scratch / name)
    (scratch / "data").mkdir()
    os.symlink(REPO_ROOT / "data" / "prepared", scratch / "data" / "prepared")
    os.symlink(REPO_ROOT / "models", scratch / "models")
    start = time.perf_counter()
    subprocess.run([sys.executable, "stages/evaluate.py"], cwd=scratch, check=True, capture_output=True)
    wall = time.perf_counter() - start
    shutil.rmtree(scratch)
    return wall


def main() -> None:
    args = parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    from fashiongen.data.prepared import load_prepared
    from fashiongen.evaluation import test_conditions
    from fashiongen.gan.artifact import load_generator
    from fashiongen.gan.sampling import sample_uint8
    from fashiongen.metrics.features import extract, load_evaluator
    from fashiongen.metrics.scores import frechet_distance, inception_score, kernel_distance, precision_recall

    for needed in ("data/prepared/meta.json", "models/evaluator.pt", "models/generator.pt"):
        if not (REPO_ROOT / needed).exists():
            raise SystemExit(f"{needed} is missing: run `dvc repro train` first.")
    generator = load_generator(REPO_ROOT / "models" / "generator.pt", device)
    evaluator = load_evaluator(REPO_ROOT / "models" / "evaluator.pt", device)
    data = load_prepared(REPO_ROOT / "data" / "prepared")
    real = data.split("test", mmap=False).images[: args.n]

    n = len(real)
    cond = test_conditions(generator.spec, data, REPO_ROOT / "data" / "encodings")[:n]
    sample_s, fakes = timed(lambda: sample_uint8(generator.module, n, generator.spec.z_dim, 0, args.batch_size, device,
                                                 cond=cond), device, args.repeats)
    extract_s, (real_feats, real_logits) = timed(lambda: extract(evaluator.model, real, args.batch_size, device), device, args.repeats)
    fake_feats, fake_logits = extract(evaluator.model, fakes, args.batch_size, device)
    frechet_distance(real_feats, fake_feats)  # warm-up: the first call imports torchmetrics
    metric_s = {
        "fid": timed(lambda: frechet_distance(real_feats, fake_feats), device, args.repeats)[0],
        "kid_100x1000": timed(lambda: kernel_distance(real_feats, fake_feats, 100, 1000, 0), device, args.repeats)[0],
        "is_10_splits": timed(lambda: inception_score(fake_logits, 10, 0), device, args.repeats)[0],
        "precision_recall_k3": timed(lambda: precision_recall(real_feats, fake_feats, 3), device, args.repeats)[0],
    }
    result = {
        "machine": machine(device),
        "revision": git_revision(),
        "n": n,
        "batch_size": args.batch_size,
        "generate_images_per_s": n / sample_s,
        "extract_images_per_s": n / extract_s,
        "metric_seconds": metric_s,
        "metrics_total_s": sum(metric_s.values()),
    }
    if args.inception_weights:
        result.update(time_inception(args.inception_weights, torch.as_tensor(real), args.inception_n,
                                     args.batch_size, device, args.repeats))
    if not args.skip_stage:
        result["evaluate_stage_wall_s"] = time_stage()
    write_json(args.json, result)


if __name__ == "__main__":
    main()
