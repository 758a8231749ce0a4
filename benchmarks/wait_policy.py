"""OpenMP's wait policy on a 2-core machine: the default GAN step's throughput alone and beside busy processes.

The evidence behind fashiongen.runtime's choice (issue 36): one training step
loop (the default DCGAN 32/32, condition none, batch 128, random images in
[-1, 1]) is timed for ``--seconds`` in a fresh process per setting, with
``OMP_WAIT_POLICY`` PASSIVE / ACTIVE / unset (libgomp's default: 300,000 spins)
and ``GOMP_SPINCOUNT`` in between, alone and beside ``--busy`` processes of
``python -c "while True: pass"`` (and, with ``--pair``, two step loops side by
side). Prints steps/s and the process's CPU time per wall second. FashionGen's
own choice is bypassed here: every setting is a user's setting.

    python benchmarks/wait_policy.py --busy 0 1 --rounds 2
    python benchmarks/wait_policy.py --step-loop 10      # one measurement (used by the above)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from common import REPO_ROOT

SETTINGS = {"passive": {"OMP_WAIT_POLICY": "PASSIVE"}, "spin300": {"GOMP_SPINCOUNT": "300"},
            "spin1000": {"GOMP_SPINCOUNT": "1000"}, "spin3000": {"GOMP_SPINCOUNT": "3000"},
            "spin10000": {"GOMP_SPINCOUNT": "10000"}, "spin30000": {"GOMP_SPINCOUNT": "30000"},
            "default": {"GOMP_SPINCOUNT": "300000"}, "active": {"OMP_WAIT_POLICY": "ACTIVE"},
            "1thread": {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}}


def step_loop(seconds: float) -> None:
    """Time the default GAN step in this process; prints one line."""
    import torch

    from fashiongen.config import parse_params
    from fashiongen.gan.training import build_trainer

    params = parse_params({"model": {"condition": "none"}})
    _, trainer = build_trainer(params, 1, 28, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    real = (torch.rand(128, 1, 28, 28, generator=generator) * 2 - 1).contiguous(memory_format=torch.channels_last)
    cond = torch.zeros(128, 0)
    for _ in range(5):
        trainer.step(real, cond)
    steps, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        trainer.step(real, cond)
        steps += 1
    wall = time.perf_counter() - started
    print(f"steps/s {steps / wall:.2f} cpu/wall {(time.process_time() - cpu) / wall:.2f} threads {torch.get_num_threads()}")


def measure(setting: str, seconds: float, pair: bool = False) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS",
                                                          "FASHIONGEN_THREADS")}
    env.update(SETTINGS[setting], PYTHONPATH=str(REPO_ROOT))
    command = [sys.executable, __file__, "--step-loop", str(seconds)]
    loops = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2 if pair else 1)]
    return [loop.communicate()[0].strip() for loop in loops]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step-loop", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--pair", action="store_true", help="also two step loops side by side, per setting")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if args.step_loop:
        step_loop(args.step_loop)
        return
    for round_ in range(args.rounds):
        for busy in args.busy:
            loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
            try:
                for setting in args.settings:
                    print(f"round {round_ + 1} busy{busy} {setting:10s}", *measure(setting, args.seconds), flush=True)
            finally:
                for loop in loops:
                    loop.kill()
        if args.pair:
            for setting in args.settings:
                print(f"round {round_ + 1} pair  {setting:10s}", " | ".join(measure(setting, args.seconds, pair=True)),
                      flush=True)


if __name__ == "__main__":
    main()
