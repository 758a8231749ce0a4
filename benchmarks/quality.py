"""Sample quality at equal wall-clock: FashionGen's defaults beside the textbook DCGAN.

1. Runs FashionGen's train stage with the repository's params.yaml (and any
   ``--set`` overrides), as a whole process, once per ``--seeds`` value
   (``train.seed``), and takes each run's wall time (start-up and in-training
   FID included); T is the longest. Each run's in-training FIDs are kept too.
2. Trains the textbook DCGAN (benchmarks/textbook.py: pytorch/examples' recipe,
   BCE, Adam 2e-4/0.5, no EMA, torchvision DataLoader) in another process for
   T seconds, counted from after its imports (so it gets slightly more).
3. Scores every generator with the evaluate stage's own code: same evaluator,
   same N real test images, same evaluation seed. The textbook is scored two
   ways: BatchNorm in eval mode (running statistics, as the pipeline samples)
   and in train mode on batches of 64 (as pytorch/examples samples: it never
   calls ``eval()``); the better FID counts. The ratio reported is the worst
   (highest) FID of our seeds over the textbook's.

Needs the pipeline's data and evaluator: run ``dvc repro train_evaluator`` first.

    python benchmarks/quality.py --seeds 0 1 2 --json docs/results/quality_cpu.json
    # a candidate recipe, then the textbook alone for its time (and others) in one run:
    python benchmarks/quality.py --seeds 0 --set train.epochs=60 --no-textbook --json cand.json
    python benchmarks/quality.py --seconds 1000 2000 --json textbook.json
"""

from __future__ import annotations

import argparse
import copy
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
    parser.add_argument("--seconds", type=float, nargs="+",
                        help="skip FashionGen's run and give the textbook these budgets: one run as long as the "
                        "longest, its generator kept at each")
    parser.add_argument("--ours", type=Path, metavar="GENERATOR",
                        help="with --seconds: score this already trained generator (e.g. models/generator.pt of a "
                        "`dvc repro` whose train stage took --seconds) instead of training one here")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a dotted params.yaml key and its value (YAML) for our runs, as `dvc exp run -S` takes "
                        "it; repeatable (e.g. --set train.epochs=60 --set model.condition=cluster)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="copy each of our runs' generator.pt, train log and dvclive metrics (metrics/*.tsv) to "
                        "DIR/seed<N>/ before the scratch folder is removed")
    parser.add_argument("--no-textbook", action="store_true",
                        help="score our runs only (the textbook's run at the same budget comes from another call)")
    parser.add_argument("--textbook-worker", metavar="OUT", help=argparse.SUPPRESS)
    return parser.parse_args()


def apply_override(params: dict, override: str) -> None:
    """Set one ``KEY=VALUE`` (dotted key, YAML value) in the round-trip ``params``; SystemExit names a bad one."""
    from ruamel.yaml import YAML

    key, sep, value = override.partition("=")
    *parents, leaf = key.split(".")
    node = params
    for name in parents:
        node = node.get(name) if isinstance(node, dict) else None
    if not sep or not isinstance(node, dict) or leaf not in node:
        raise SystemExit(f"--set {override!r}: not KEY=VALUE with KEY a params.yaml key (e.g. train.epochs=60).")
    node[leaf] = YAML(typ="safe").load(value)


def run_fashiongen(scratch: Path, seed: int, overrides: list[str]) -> tuple[float, Path]:
    """The train stage with the repository's params, ``overrides`` and ``train.seed``, in a scratch copy of the
    pipeline's inputs."""
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: the copy differs from params.yaml in the overrides and train.seed only
    params = yaml.load((REPO_ROOT / "params.yaml").read_text())
    for override in overrides:
        apply_override(params, override)
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


def in_training_fids(run_dir: Path) -> dict[int, float]:
    """A finished run's in-training FIDs (``train.eval_samples`` samples each), by epoch, from its dvclive logs;
    empty for a run without them (``train.eval_every: 0``)."""
    import pandas as pd

    logs = run_dir / "results" / "train" / "plots" / "metrics"
    if not (logs / "fid.tsv").exists():
        return {}
    fids = pd.read_csv(logs / "fid.tsv", sep="\t").merge(pd.read_csv(logs / "epoch.tsv", sep="\t"), on="step")
    return {round(epoch): fid for epoch, fid in zip(fids["epoch"], fids["fid"])}


def textbook_worker(out: Path, budgets: list[float]) -> None:
    """Train the textbook DCGAN for the longest of ``budgets`` (seconds, whole iterations); save its generator as it
    stands once each budget has passed (``out``: one entry per budget, in order)."""
    from textbook import TextbookLoop, textbook_dataloader

    torch.manual_seed(0)
    loop = TextbookLoop(ngf=64, ndf=64, device=torch.device("cpu"))
    loader = textbook_dataloader(REPO_ROOT / "data" / "raw", batch_size=128)
    pending, kept = sorted(budgets), []
    start, steps, epochs = time.perf_counter(), 0, 0
    while pending:
        for data, _ in loader:
            loop.step(data)
            steps += 1
            elapsed = time.perf_counter() - start
            while pending and elapsed >= pending[0]:
                kept.append({"budget_s": pending.pop(0), "state_dict": copy.deepcopy(loop.netG.state_dict()),
                             "steps": steps, "images": steps * 128, "seconds": elapsed, "full_epochs": epochs})
            if not pending:
                break
        else:
            epochs += 1
    torch.save(kept, out)


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


def run_textbook(out: Path, budgets: list[float]) -> list[dict]:
    """The textbook DCGAN trained in another process for each budget (one run, kept at each), scored both ways.

    pytorch/examples samples with BatchNorm in train mode (batch statistics of 64 images) and never calls ``eval()``;
    the pipeline's scoring puts a generator in eval mode (running statistics). Each budget's generator is scored
    both ways (``bn_eval``, ``bn_train``); its top-level metrics are the better (lower-FID) one's, named in
    ``sampling``, so every ratio is against the textbook at its best.
    """
    from textbook import BatchStatsSampling, TextbookGenerator

    subprocess.run([sys.executable, __file__, "--textbook-worker", str(out), "--seconds", *map(str, budgets)],
                   cwd=REPO_ROOT / "benchmarks", check=True)
    runs = []
    for kept in torch.load(out, weights_only=True):
        textbook = TextbookGenerator(nz=100, ngf=64)
        textbook.load_state_dict(kept.pop("state_dict"))
        modes = {"bn_eval": score(textbook, textbook.nz), "bn_train": score(BatchStatsSampling(textbook), textbook.nz)}
        better = min(modes, key=lambda mode: modes[mode]["fid"])
        runs.append({"train": kept, "sampling": better, **modes[better], "by_sampling": modes})
        print(f"textbook, {kept['budget_s']:.0f} s: FID {modes['bn_eval']['fid']:.2f} (BatchNorm eval mode), "
              f"{modes['bn_train']['fid']:.2f} (train mode, batches of 64)", flush=True)
    return runs


def main() -> None:
    args = parse_args()
    if args.textbook_worker:
        textbook_worker(Path(args.textbook_worker), args.seconds)
        return
    if args.overrides:  # a bad KEY=VALUE stops here, before any training
        from ruamel.yaml import YAML

        params = YAML().load((REPO_ROOT / "params.yaml").read_text())
        for override in args.overrides:
            apply_override(params, override)
    for needed in ("data/raw/train-images-idx3-ubyte", "data/prepared/meta.json", "models/evaluator.pt"):
        if not (REPO_ROOT / needed).exists():
            raise SystemExit(f"{needed} is missing: run `dvc repro train_evaluator` first.")
    from fashiongen.gan.artifact import load_generator

    scratch = Path(tempfile.mkdtemp(prefix="fashiongen-quality-"))
    result: dict = {"machine": machine(torch.device("cpu")), "revision": git_revision()}
    if args.seconds is None:
        runs = []
        for seed in args.seeds:
            (scratch / f"seed{seed}").mkdir()
            wall, generator_path = run_fashiongen(scratch / f"seed{seed}", seed, args.overrides)
            if args.keep:
                (args.keep / f"seed{seed}").mkdir(parents=True, exist_ok=True)
                for produced in (generator_path, scratch / f"seed{seed}" / "train.log"):
                    shutil.copy2(produced, args.keep / f"seed{seed}" / produced.name)
                shutil.copytree(scratch / f"seed{seed}" / "results" / "train" / "plots" / "metrics",
                                args.keep / f"seed{seed}" / "metrics", dirs_exist_ok=True)
            ours = load_generator(generator_path)
            runs.append({"seed": seed, "train_wall_s": wall, "params": ours.params,
                         "in_training_fid": in_training_fids(scratch / f"seed{seed}"),
                         **score(ours.module, ours.spec.z_dim, ours.spec)})
            print(f"ours, seed {seed}: {wall:.0f} s, FID {runs[-1]['fid']:.2f}", flush=True)
        budgets = [max(run["train_wall_s"] for run in runs)]
        result["overrides"] = args.overrides
        result["fashiongen_seeds"] = runs
        result["fashiongen"] = max(runs, key=lambda run: run["fid"])  # the worst seed
    else:
        budgets = args.seconds
        if args.ours:
            if len(budgets) != 1:
                raise SystemExit("--ours takes one --seconds: the time its generator trained.")
            ours = load_generator(args.ours)
            result["fashiongen"] = {"train_wall_s": budgets[0], "generator": str(args.ours), "params": ours.params,
                                    **score(ours.module, ours.spec.z_dim, ours.spec)}
    if not args.no_textbook:
        result["textbook_runs"] = run_textbook(scratch / "textbook.pt", budgets)
        if "fashiongen" in result:  # our runs' budget is the one textbook budget
            result["textbook"] = result["textbook_runs"][0]
            result["fid_ratio_fashiongen_over_textbook"] = result["fashiongen"]["fid"] / result["textbook"]["fid"]
    shutil.rmtree(scratch)
    write_json(args.json, json.loads(json.dumps(result, default=str)))


if __name__ == "__main__":
    main()
