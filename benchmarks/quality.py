"""Sample quality at equal wall-clock: FashionGen's defaults beside the textbook DCGAN.

1. Runs FashionGen's train stage with the repository's params.yaml, as a whole
   process, once per ``--seeds`` value (``train.seed``), and takes each run's
   wall time (start-up and in-training FID included); T is the longest.
2. Trains the textbook DCGAN (benchmarks/textbook.py: pytorch/examples' recipe,
   BCE, Adam 2e-4/0.5, no EMA, torchvision DataLoader) in another process for
   T seconds, counted from after its imports (so it gets slightly more).
3. Scores every generator with the evaluate stage's own code: same evaluator,
   same N real test images, same evaluation seed. The ratio reported is the
   worst (highest) FID of our seeds over the textbook's.

Needs the pipeline's data and evaluator: run ``dvc repro train_evaluator`` first.

    python benchmarks/quality.py --seeds 0 1 2 --json docs/results/quality_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import REPO_ROOT, git_revision, machine, write_json


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="train.seed of each of our runs (default 0)")
    parser.add_argument("--seconds", type=float, help="skip FashionGen's run and give the textbook this budget")
    parser.add_argument("--ours", type=Path, metavar="GENERATOR",
                        help="with --seconds: score this already trained generator (e.g. models/generator.pt of a "
                        "`dvc repro` whose train stage took --seconds) instead of training one here")
    parser.add_argument("--textbook-worker", metavar="OUT", help=argparse.SUPPRESS)
    return parser.parse_args()


def run_fashiongen(scratch: Path, seed: int) -> tuple[float, Path]:
    """The train stage with the repository's params but ``train.seed``, in a scratch copy of the pipeline's inputs."""
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: the copy differs from params.yaml in train.seed only
    params = yaml.load((REPO_ROOT / "params.yaml").read_text())
    params["train"]["seed"] = seed
    with open(scratch / "params.yaml", "w") as out:
        yaml.dump(params, out)
    for name in ("stages", "fashiongen"):
        os.symlink(REPO_ROOT / name, scratch / name)
    (scratch / "data").mkdir()
    for folder in ("prepared", "encodings"):
        os.symlink(REPO_ROOT / "data" / folder, scratch / "data" / folder)
    (scratch / "models").mkdir()
    os.symlink(REPO_ROOT / "models" / "evaluator.pt", scratch / "models" / "evaluator.pt")
    start = time.perf_counter()
    with open(scratch / "train.log", "w") as log:
        subprocess.run([sys.executable, "stages/train.py"], cwd=scratch, stdout=log, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start, scratch / "models" / "generator.pt"


def textbook_worker(out: Path, seconds: float) -> None:
    """Train the textbook DCGAN for ``seconds`` (whole iterations), save its generator."""
    from textbook import TextbookLoop, textbook_dataloader

    torch.manual_seed(0)
    loop = TextbookLoop(ngf=64, ndf=64, device=torch.device("cpu"))
    loader = textbook_dataloader(REPO_ROOT / "data" / "raw", batch_size=128)
    start, steps, epochs = time.perf_counter(), 0, 0
    while time.perf_counter() - start < seconds:
        for data, _ in loader:
            loop.step(data)
            steps += 1
            if time.perf_counter() - start >= seconds:
                break
        else:
            epochs += 1
    torch.save({"state_dict": loop.netG.state_dict(), "steps": steps, "images": steps * 128,
                "seconds": time.perf_counter() - start, "full_epochs": epochs}, out)


class Unconditional(torch.nn.Module):
    """A plain ``G(z)`` called as FashionGen calls every generator, ``G(z, c)`` (``c`` empty)."""

    def __init__(self, generator: torch.nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.generator(z)


def score(module: torch.nn.Module, z_dim: int, spec=None) -> dict:
    """The pipeline's metrics of ``module``: a FashionGen generator of ``spec``, or (``spec`` None) a plain ``G(z)``."""
    from fashiongen.config import load_params
    from fashiongen.data.prepared import load_prepared
    from fashiongen.evaluation import score_generator, split_conditions
    from fashiongen.metrics.features import load_evaluator

    params = load_params(REPO_ROOT / "params.yaml")
    data = load_prepared(REPO_ROOT / "data" / "prepared")
    evaluator = load_evaluator(REPO_ROOT / "models" / "evaluator.pt")
    if spec is None:
        module, conditions = Unconditional(module), None
    else:
        conditions = split_conditions(spec, data, REPO_ROOT / "data" / "encodings")
    metrics, _ = score_generator(module, z_dim, params.evaluate, data, evaluator, "cpu", conditions)
    return metrics


def main() -> None:
    args = parse_args()
    if args.textbook_worker:
        textbook_worker(Path(args.textbook_worker), args.seconds)
        return
    for needed in ("data/raw/train-images-idx3-ubyte", "data/prepared/meta.json", "models/evaluator.pt"):
        if not (REPO_ROOT / needed).exists():
            raise SystemExit(f"{needed} is missing: run `dvc repro train_evaluator` first.")
    from fashiongen.gan.artifact import load_generator
    from textbook import TextbookGenerator

    scratch = Path(tempfile.mkdtemp(prefix="fashiongen-quality-"))
    result: dict = {"machine": machine(torch.device("cpu")), "revision": git_revision()}
    if args.seconds is None:
        runs = []
        for seed in args.seeds:
            (scratch / f"seed{seed}").mkdir()
            wall, generator_path = run_fashiongen(scratch / f"seed{seed}", seed)
            ours = load_generator(generator_path)
            runs.append({"seed": seed, "train_wall_s": wall, "params": ours.params,
                         **score(ours.module, ours.spec.z_dim, ours.spec)})
            print(f"ours, seed {seed}: {wall:.0f} s, FID {runs[-1]['fid']:.2f}", flush=True)
        seconds = max(run["train_wall_s"] for run in runs)
        result["fashiongen_seeds"] = runs
        result["fashiongen"] = max(runs, key=lambda run: run["fid"])  # the worst seed
    else:
        seconds = args.seconds
        if args.ours:
            ours = load_generator(args.ours)
            result["fashiongen"] = {"train_wall_s": seconds, "generator": str(args.ours), "params": ours.params,
                                    **score(ours.module, ours.spec.z_dim, ours.spec)}
    textbook_out = scratch / "textbook.pt"
    subprocess.run([sys.executable, __file__, "--textbook-worker", str(textbook_out), "--seconds", str(seconds)],
                   cwd=REPO_ROOT / "benchmarks", check=True)
    trained = torch.load(textbook_out, weights_only=True)
    textbook = TextbookGenerator(nz=100, ngf=64)
    textbook.load_state_dict(trained.pop("state_dict"))
    result["textbook"] = {"train": trained, **score(textbook, textbook.nz)}
    print(f"textbook: {seconds:.0f} s, FID {result['textbook']['fid']:.2f}", flush=True)
    if "fashiongen" in result:
        result["fid_ratio_fashiongen_over_textbook"] = result["fashiongen"]["fid"] / result["textbook"]["fid"]
    shutil.rmtree(scratch)
    write_json(args.json, json.loads(json.dumps(result, default=str)))


if __name__ == "__main__":
    main()
