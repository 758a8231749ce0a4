"""What the evaluate stage's look inside the generator (issue 18) costs, at the default params.

Runs the evaluate stage's scoring (:func:`fashiongen.evaluation.score_generator`)
twice on the same inputs, without and with
:func:`fashiongen.analysis.inspection.inspect_generator`, and times the
analysis's parts by wrapping its functions with timers: the training split's
features (extraction), the nearest-neighbour search and copy rate, MiFID, the
per-class table, the truncation sweep, the truncation grid and the
interpolation strips. The bar (issue 18): the added work costs <= 60 s on 2
CPU cores at N = 10,000. On a shared machine the wall times are upper
bounds; the process's CPU seconds ÷ its threads estimate the wall time on
otherwise idle cores.

Inputs: the pipeline's outputs when they exist (models/generator.pt,
models/evaluator.pt, data/prepared); otherwise, by default, Fashion-MNIST
prepared from ``data.local_dir`` into a scratch folder and *untrained*
networks of params.yaml's shapes (model.*, evaluator.*). The work done does
not depend on the weights: every step is dense (convolutions, exhaustive
distances, top-k), so the timing is that of a trained pair.

    python benchmarks/analysis_cost.py --json docs/results/analysis_cost_cpu.json
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from common import REPO_ROOT, git_revision, machine, write_json


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--untrained", action="store_true", help="use untrained networks even if models/ has trained ones")
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args()


def inputs(untrained: bool, scratch: Path):
    """(params, prepared data, evaluator, generator, what they are)."""
    from fashiongen.config import load_params
    from fashiongen.data.prepared import load_prepared
    from fashiongen.gan.artifact import load_generator
    from fashiongen.metrics.features import load_evaluator

    params = load_params(REPO_ROOT / "params.yaml")
    trained = all((REPO_ROOT / p).exists() for p in ("models/generator.pt", "models/evaluator.pt", "data/prepared/meta.json"))
    if trained and not untrained:
        return (params, load_prepared(REPO_ROOT / "data/prepared"), load_evaluator(REPO_ROOT / "models/evaluator.pt"),
                load_generator(REPO_ROOT / "models/generator.pt"), "the pipeline's trained outputs")
    from fashiongen.data.fashion_mnist import fetch_fashion_mnist
    from fashiongen.data.prepare import prepare_fashion_mnist
    from fashiongen.gan.artifact import GeneratorSpec, build_generator, save_generator
    from fashiongen.metrics.features import save_evaluator
    from fashiongen.models.evaluator import Evaluator

    data = params.data
    fetch_fashion_mnist(scratch / "raw", data.local_dir, data.mirrors, data.download_timeout_s)
    meta = prepare_fashion_mnist(scratch / "raw", scratch / "prepared", None)
    config = {"channels": 1, "num_classes": 10, "image_size": 28, "width": params.evaluator.width,
              "feature_dim": params.evaluator.feature_dim}
    torch.manual_seed(0)
    save_evaluator(scratch / "evaluator.pt", Evaluator(**config), config, meta["classes"], 0.0)
    model = params.model
    spec = GeneratorSpec(z_dim=model.z_dim, width=model.g_width, channels=1, image_size=28, arch=model.arch)
    save_generator(scratch / "generator.pt", build_generator(spec), spec, meta["classes"], {})
    return (params, load_prepared(scratch / "prepared"), load_evaluator(scratch / "evaluator.pt"),
            load_generator(scratch / "generator.pt"), "untrained networks of params.yaml's shapes, full Fashion-MNIST")


def timed_parts(seconds: dict) -> None:
    """Wrap the analysis's functions (and feature extraction, by image count) with timers adding to ``seconds``.

    Each part gets (wall seconds, CPU seconds of this process).
    """
    from fashiongen import evaluation
    from fashiongen.analysis import inspection

    def wrap(module, name, key=None):
        original = getattr(module, name)

        @functools.wraps(original)
        def timer(*args, **kwargs):
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                label = key(*args) if key else name
                seconds[label][0] += time.perf_counter() - start
                seconds[label][1] += time.process_time() - cpu

        setattr(module, name, timer)

    for name in ("memorisation", "mifid", "per_class_table", "intra_class_fid", "truncation_sweep", "truncation_grid",
                 "interpolation_strips", "neighbour_rows"):
        wrap(inspection, name)
    wrap(evaluation, "extract", key=lambda model, images, *rest: f"extract {len(images)} images")


def main() -> None:
    args = parse_args()
    from fashiongen.analysis.inspection import inspect_generator
    from fashiongen.evaluation import score_generator

    with tempfile.TemporaryDirectory(prefix="fashiongen-analysis-") as scratch:
        scratch = Path(scratch)
        params, data, evaluator, generator, what = inputs(args.untrained, scratch)
        cfg = params.evaluate
        out = scratch / "evaluate"
        out.mkdir()

        def score(inspect=None):
            start, cpu = time.perf_counter(), time.process_time()
            metrics, _ = score_generator(generator.module, generator.spec.z_dim, cfg, data, evaluator, "cpu", inspect=inspect)
            return (time.perf_counter() - start, time.process_time() - cpu), metrics

        score()  # warm-up: imports, oneDNN kernel choice
        without, _ = score()
        seconds: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        timed_parts(seconds)
        with_, metrics = score(lambda scored: inspect_generator(cfg, data, scored, out, "cpu"))
        load = os.getloadavg()
    result = {
        "machine": machine(torch.device("cpu")),
        "revision": git_revision(),
        "inputs": what,
        "num_samples": cfg.num_samples,
        "truncation": cfg.truncation,
        "load_average_1_5_15_min_at_end": load,
        "wall_s": {"without_analysis": without[0], "with_analysis": with_[0], "added": with_[0] - without[0]},
        # CPU seconds of this process; ÷ torch_threads = the wall time on that many otherwise idle cores
        "cpu_s": {"without_analysis": without[1], "with_analysis": with_[1], "added": with_[1] - without[1]},
        "parts_wall_cpu_s": dict(seconds),
        "metrics": {k: metrics[k] for k in ("fid", "copy_rate", "copy_rate_floor", "mifid", "class_share_distance")},
    }
    write_json(args.json, result)


if __name__ == "__main__":
    main()
