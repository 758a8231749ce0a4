"""Training speed of ``model.arch: resnet`` block shapes against DCGAN at equal parameter count, on this CPU.

One measurement = one full training step of FashionGen's trainer (D update +
G update, ``model.loss: bce``, float32, channels-last, built by
``fashiongen.gan.training.build_trainer`` exactly as the train stage builds it)
at batch 128 on 28×28×1 images, ``torch.set_num_threads(--threads)``.

Phase 1 times DCGAN 32/32 (today's default) and one resnet setting per block
shape whose G + D parameter count is within 10 % of DCGAN 32/32's; phase 2
times the fastest resnet shape of phase 1 against its setting with every
stage width scaled by one factor to about 2× the parameters, and DCGAN again. Within a phase
the variants are interleaved (A B C … A B C …, ``--rounds`` rounds of
``--steps`` steps, after one warm-up step each) and the median images/s per
variant is reported, so load from other processes on a shared machine falls
on all of them alike.

    python benchmarks/resnet_speed.py --json docs/results/resnet_speed_cpu.json
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import git_revision, machine, write_json

from fashiongen.config import parse_params
from fashiongen.gan.training import build_trainer

BATCH, SIZE = 128, 28
DCGAN = {"arch": "dcgan", "g_width": 32, "d_width": 32}
# G + D within 10 % of DCGAN 32/32's 383,616 parameters (the 7×7 basis layer holds most of them); stage widths
# at 7, 14, 28 px. Each shape with 8 channels at full resolution, and two with 16 (what full-size width costs).
MATCHED = {
    "resnet-grouped16-56.32.8": {"resnet_block": "grouped", "resnet_group_width": 16, "stage_widths": [56, 32, 8]},
    "resnet-grouped8-64.32.8": {"resnet_block": "grouped", "resnet_group_width": 8, "stage_widths": [64, 32, 8]},
    "resnet-depthwise-64.32.8": {"resnet_block": "depthwise", "stage_widths": [64, 32, 8]},
    "resnet-basic-48.32.8": {"resnet_block": "basic", "stage_widths": [48, 32, 8]},
    "resnet-grouped16-56.32.16": {"resnet_block": "grouped", "resnet_group_width": 16, "stage_widths": [56, 32, 16]},
    "resnet-basic-48.32.16": {"resnet_block": "basic", "stage_widths": [48, 32, 16]},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per phase")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps per variant and round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args()


def model_params(variant: dict) -> dict:
    return {"arch": "resnet", **variant} if "arch" not in variant else dict(variant)


def build(variant: dict):
    params = parse_params({"model": {"loss": "bce", **model_params(variant)}, "train": {"batch_size": BATCH}})
    _, trainer = build_trainer(params, channels=1, image_size=SIZE, device=torch.device("cpu"))
    counts = [sum(p.numel() for p in net.parameters()) for net in (trainer.generator, trainer.discriminator)]
    return trainer, counts


def measure(variants: dict[str, dict], rounds: int, steps: int) -> dict[str, dict]:
    """Median images/s of every variant over interleaved rounds, with G/D parameter counts."""
    real = torch.rand(BATCH, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    cond = torch.empty(BATCH, 0)
    built = {name: build(variant) for name, variant in variants.items()}
    for trainer, _ in built.values():
        trainer.step(real, cond)  # warm-up: oneDNN picks its kernels
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (trainer, _) in built.items():
            start = time.perf_counter()
            for _ in range(steps):
                stats = trainer.step(real, cond)
            rates[name].append(BATCH * steps / (time.perf_counter() - start))
            print(f"  {name}: {rates[name][-1]:.1f} img/s", flush=True)
            assert torch.isfinite(stats).all(), f"{name}: non-finite losses {stats.tolist()}"
    return {
        name: {
            "model": model_params(variants[name]), "g_params": counts[0], "d_params": counts[1],
            "params": sum(counts), "images_per_s": statistics.median(rates[name]),
            "images_per_s_rounds": [round(r, 1) for r in rates[name]],
        }
        for name, (_, counts) in built.items()
    }


def doubled(variant: dict) -> dict:
    """``variant`` with every stage width scaled by one factor (multiples of 8) to about 2× its parameters."""
    base = build(variant)[1]
    best = None
    for step in range(11):
        scale = 1.2 + 0.08 * step
        widths = [max(8, round(w * scale / 8) * 8) for w in variant["stage_widths"]]
        candidate = {**variant, "stage_widths": widths}
        ratio = sum(build(candidate)[1]) / sum(base)
        if best is None or abs(ratio - 2) < abs(best[0] - 2):
            best = (ratio, candidate)
    return best[1]


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    phase1 = measure({"dcgan-32/32": DCGAN, **MATCHED}, args.rounds, args.steps)
    best = max(MATCHED, key=lambda name: phase1[name]["images_per_s"])
    phase2 = measure({"dcgan-32/32": DCGAN, best: MATCHED[best], f"{best}-x2params": doubled(MATCHED[best])},
                     args.rounds, args.steps)
    reference = phase1["dcgan-32/32"]["params"]
    for phase in (phase1, phase2):
        for row in phase.values():
            row["params_vs_dcgan"] = round(row["params"] / reference, 3)
    for title, phase in (("phase 1: equal parameters", phase1), ("phase 2: the fastest shape, ~2x parameters", phase2)):
        print(title)
        for name, row in phase.items():
            print(f"  {name:34s} {row['images_per_s']:8.1f} img/s  G {row['g_params']:>9,}  D {row['d_params']:>9,}"
                  f"  G+D {row['params']:>9,} ({row['params_vs_dcgan']:.2f}x DCGAN)")
    write_json(args.json, {
        "benchmark": "resnet_speed", "revision": git_revision(), "machine": machine(torch.device("cpu")),
        "setup": {"batch_size": BATCH, "image": [1, SIZE, SIZE], "loss": "bce", "dtype": "float32",
                  "threads": args.threads, "rounds": args.rounds, "steps_per_round": args.steps},
        "equal_params": phase1, "fastest": best, "fastest_2x": phase2,
    })


if __name__ == "__main__":
    main()
