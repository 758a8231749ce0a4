"""Why do label-conditioned generators score near-zero recall? Evidence from one or more generators.

For each generator (a ``models/generator.pt``-style file) this measures, with
the pipeline's evaluator and the test split as the real set (N = all 10,000
test images, one sample per test image with its label, as the evaluate stage
draws them):

- precision / recall as the evaluate stage computes them, with the generator in
  eval mode (BatchNorm running statistics) and, as a check of the scoring, in
  train mode (per-batch statistics, batches mixing every class);
- per class: precision / recall of the class's samples against the real images
  of that class (does recall fail inside a class, or only across classes?);
  the diversity ratio (mean pairwise feature distance, samples ÷ real);
  the *effective dimension* of the features (participation ratio of the PCA
  eigenvalues, (Σλ)²/Σλ²; a cloud that is spread but thin has a large
  pairwise distance and a small effective dimension), samples vs real;
  and the median 3-NN radius (the k-NN balls recall is made of), samples vs real;
- for unconditional generators the same per class, with classes assigned by
  the evaluator's prediction.

    python benchmarks/label_variety.py models/generator.pt other.pt --json docs/results/label_variety.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from common import REPO_ROOT, git_revision, machine, write_json


def participation_ratio(features: torch.Tensor) -> float:
    """(Σλ)²/Σλ² of the covariance eigenvalues λ of ``features`` (N, D): 1 for a line, D for an isotropic cloud."""
    centred = features.double() - features.double().mean(0)
    eig = torch.linalg.eigvalsh(centred.T @ centred / (len(features) - 1)).clamp(min=0)
    return float(eig.sum() ** 2 / (eig**2).sum())


def median_radius(features: torch.Tensor, k: int) -> float:
    from fashiongen.metrics.scores import knn_radii

    return float(knn_radii(features, k).median())


def analyse(path: Path, k: int = 3) -> dict:
    from fashiongen.data.prepared import load_prepared
    from fashiongen.evaluation import mean_pairwise_distance, split_conditions
    from fashiongen.gan.artifact import load_generator
    from fashiongen.gan.sampling import generate_uint8, noise
    from fashiongen.metrics.features import extract, load_evaluator
    from fashiongen.metrics.scores import precision_recall

    data = load_prepared(REPO_ROOT / "data" / "prepared")
    evaluator = load_evaluator(REPO_ROOT / "models" / "evaluator.pt")
    loaded = load_generator(path)
    test = data.split("test")
    labels = np.asarray(test.labels)
    cond = split_conditions(loaded.spec, data, REPO_ROOT / "data" / "encodings", splits=("test",))["test"]
    z = noise(len(labels), loaded.spec.z_dim, 0)
    real_feats, _ = extract(evaluator.model, np.asarray(test.images), 1000)

    def sample(train_mode: bool) -> tuple[torch.Tensor, torch.Tensor]:
        images = []
        loaded.module.train(train_mode)
        with torch.no_grad():
            order = np.random.default_rng(0).permutation(len(z))  # batches mixing every class
            out = torch.empty(len(z), *loaded.module(z[:1], cond[:1]).shape[1:])
            for start in range(0, len(z), 1000):
                rows = torch.as_tensor(order[start : start + 1000])
                out[rows] = loaded.module(z[rows], cond[rows])
            images = ((out.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        loaded.module.eval()
        return extract(evaluator.model, images, 1000)

    result: dict = {"generator": str(path), "condition": loaded.spec.condition, "params": loaded.params.get("model")}
    fake_feats, fake_logits = sample(train_mode=False)
    p, r = precision_recall(real_feats, fake_feats, k)
    result["eval_mode"] = {"precision": p, "recall": r}
    train_feats, _ = sample(train_mode=True)
    p, r = precision_recall(real_feats, train_feats, k)
    result["train_mode_batchnorm"] = {"precision": p, "recall": r}
    fake_class = labels if loaded.spec.condition != "none" else fake_logits.argmax(1).numpy()
    per_class = []
    for c in range(data.num_classes):
        real_c, fake_c = real_feats[labels == c], fake_feats[fake_class == c]
        if len(fake_c) < 2 * k + 2:
            continue
        n = min(len(real_c), len(fake_c))
        p, r = precision_recall(real_c[:n], fake_c[:n], k)
        per_class.append({
            "class": data.classes[c], "samples": int(len(fake_c)), "precision": p, "recall": r,
            "diversity": float(mean_pairwise_distance(fake_c[None, :n]) / mean_pairwise_distance(real_c[None, :n])),
            "effective_dim_fake": participation_ratio(fake_c), "effective_dim_real": participation_ratio(real_c),
            "median_knn_radius_fake": median_radius(fake_c[:n], k), "median_knn_radius_real": median_radius(real_c[:n], k),
        })
    result["per_class"] = per_class
    result["effective_dim_all"] = {"fake": participation_ratio(fake_feats), "real": participation_ratio(real_feats)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("generators", nargs="+", type=Path)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    results = {"machine": machine(torch.device("cpu")), "revision": git_revision(),
               "generators": [analyse(path) for path in args.generators]}
    for gen in results["generators"]:
        print(gen["generator"], gen["condition"], "eval-mode P/R", gen["eval_mode"], "train-mode BN P/R",
              gen["train_mode_batchnorm"], "eff. dim", gen["effective_dim_all"])
        for row in gen["per_class"]:
            print("  ", {key: round(v, 3) if isinstance(v, float) else v for key, v in row.items()})
    write_json(args.json, json.loads(json.dumps(results, default=str)))


if __name__ == "__main__":
    main()
