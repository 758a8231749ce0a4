"""What R1/R2 cost per training step, every step vs lazily (``model.reg_every``).

Times FashionGen's training step (``GANTrainer.step``: one D and one G update,
batch 128, 28×28×1, the default DCGAN 32/32 and rpgan loss) with R1 + R2 off,
every step, every 4th and every 16th step, interleaved (A B C D A B C D …)
so that a shared machine slows every variant alike; reports the median
images/s of each and its cost relative to no penalty.

    python benchmarks/lazy_regularisation.py --json docs/results/lazy_regularisation_cpu.json
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import git_revision, machine, write_json

VARIANTS = {"no R1/R2": (0.0, 1), "R1/R2 every step": (0.1, 1), "every 4th (default)": (0.1, 4),
            "every 16th": (0.1, 16)}


def make_trainer(gamma: float, reg_every: int):
    from fashiongen.config import parse_params
    from fashiongen.gan.training import build_trainer

    params = parse_params({"model": {"r1_gamma": gamma, "reg_every": reg_every}, "train": {"device": "cpu"}})
    return build_trainer(params, channels=1, image_size=28, device=torch.device("cpu"))[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=32, help="steps per timing (a multiple of 16)")
    parser.add_argument("--json")
    args = parser.parse_args()
    real = torch.rand(128, 1, 28, 28).mul(2).sub(1).contiguous(memory_format=torch.channels_last)
    cond = torch.empty(128, 0)
    trainers = {name: make_trainer(*setting) for name, setting in VARIANTS.items()}
    for trainer in trainers.values():  # warm-up
        for _ in range(4):
            trainer.step(real, cond)
    rates: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                trainer.step(real, cond)
            rates[name].append(args.steps * len(real) / (time.perf_counter() - start))
    base = statistics.median(rates["no R1/R2"])
    result = {"machine": machine(torch.device("cpu")), "revision": git_revision(), "rounds": args.rounds,
              "steps": args.steps, "variants": {}}
    for name, values in rates.items():
        median = statistics.median(values)
        result["variants"][name] = {"images_per_s": values, "median": median, "relative_to_none": median / base}
        print(f"{name:22s} {median:8.0f} img/s  {median / base:.2f}× no penalty")
    write_json(args.json, result)


if __name__ == "__main__":
    main()
