"""Probe: would bf16 autocast speed up FashionGen's training step on this CPU?

``train.amp`` autocasts to bf16 on GPUs only. CPUs with native bf16 units
(``avx512_bf16`` or AMX) may gain from it too; this measures FashionGen's own
step (``build_trainer`` + ``GANTrainer.step`` on the in-memory dataset) in
float32 and under bf16 autocast, interleaved, median of the repeats, at each
width asked for. It measures speed only: whether bf16 keeps the sample quality
at the default budget is a separate experiment, and nothing here changes what
the train stage does.

    python benchmarks/cpu_bf16.py --json docs/results/cpu_bf16.json
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import REPO_ROOT, git_revision, machine, write_json


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 32], help="G and D widths to measure")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args()


def step_function(images: torch.Tensor, channels: int, size: int, width: int, batch_size: int, bf16: bool):
    """FashionGen's training step as the train stage builds it; bf16 autocast forced on when asked."""
    from fashiongen.config import parse_params
    from fashiongen.gan.training import batches, build_trainer

    params = parse_params({"model": {"g_width": width, "d_width": width}, "train": {"batch_size": batch_size}})
    _, trainer = build_trainer(params, channels, size, torch.device("cpu"))
    trainer.amp_dtype = torch.bfloat16 if bf16 else None

    def forever():
        while True:
            yield from batches(images, batch_size, trainer.rng)

    stream = forever()
    return lambda: trainer.step(*next(stream))


def main() -> None:
    args = parse_args()
    from fashiongen.data.prepared import load_prepared

    if not (REPO_ROOT / "data" / "prepared" / "meta.json").exists():
        raise SystemExit("data/prepared is missing: run `dvc repro preprocess` first.")
    data = load_prepared(REPO_ROOT / "data" / "prepared")
    images = torch.from_numpy(data.split("train", mmap=False).images)
    report: dict = {"benchmark": "cpu_bf16", "machine": machine(torch.device("cpu")), "revision": git_revision(),
                    "batch_size": args.batch_size, "steps": args.steps, "repeats": args.repeats, "widths": {}}
    for width in args.widths:
        steps = {precision: step_function(images, data.channels, data.image_size, width, args.batch_size, precision == "bf16")
                 for precision in ("fp32", "bf16")}
        for step in steps.values():  # warm-up: oneDNN picks and caches its kernels
            for _ in range(5):
                step()
        rates: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.repeats):
            for name, step in steps.items():
                start = time.perf_counter()
                for _ in range(args.steps):
                    step()
                rates[name].append(args.steps * args.batch_size / (time.perf_counter() - start))
        fp32, bf16 = statistics.median(rates["fp32"]), statistics.median(rates["bf16"])
        report["widths"][str(width)] = {"fp32_images_per_s": fp32, "bf16_images_per_s": bf16,
                                        "speedup": bf16 / fp32, "all": rates}
    write_json(args.json, report)


if __name__ == "__main__":
    main()
