"""How well do the pixel k-means clusters of ``model.condition: cluster`` match the classes?

For each ``--k`` and ``--seeds`` value this clusters the prepared training split
exactly as the train stage does (``fashiongen.clustering.pixel_clusters``:
scikit-learn's KMeans on pixels area-averaged to at most 16 px, k-means++,
``train.seed`` as its random state) and scores the assignment against the class
labels, which the clustering never sees:

- purity: the share of images in their cluster's most common class, in [0, 1]
  (1/classes for a random assignment; rises with k, 1 when every image is its own cluster);
- NMI: scikit-learn's normalized mutual information (arithmetic mean), in [0, 1],
  which does not reward more clusters by itself;
- the smallest and largest cluster, in images.

Needs the labelled prepared data (``dvc repro preprocess`` on Fashion-MNIST).

    python benchmarks/cluster_purity.py --k 10 20 30 100 --seeds 0 1 2 --json docs/results/cluster_purity.json
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from common import REPO_ROOT, git_revision, machine, write_json


def purity(clusters: np.ndarray, labels: np.ndarray) -> float:
    """The share of images whose class is their cluster's most common one: float in [0, 1]."""
    from sklearn.metrics.cluster import contingency_matrix

    return float(contingency_matrix(clusters, labels).max(axis=1).sum() / len(labels))


def score(images: np.ndarray, labels: np.ndarray, k: int, seed: int) -> dict:
    from sklearn.metrics import normalized_mutual_info_score

    from fashiongen.clustering import pixel_clusters

    start = time.perf_counter()
    clusters = pixel_clusters(lambda index: torch.from_numpy(images[index.numpy()]), len(images), k, seed)
    sizes = np.bincount(clusters, minlength=k)
    return {
        "k": k,
        "seed": seed,
        "purity": round(purity(clusters, labels), 4),
        "nmi": round(float(normalized_mutual_info_score(labels, clusters)), 4),
        "smallest_cluster": int(sizes.min()),
        "largest_cluster": int(sizes.max()),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, nargs="+", default=[10, 20, 30, 100], help="cluster counts (model.clusters)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="k-means random states (train.seed)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    from fashiongen.data.prepared import load_prepared

    data = load_prepared(REPO_ROOT / "data" / "prepared")
    if not data.labelled:
        raise SystemExit("error: data/prepared has no class labels to score the clusters against.")
    train = data.split("train", mmap=False)
    images, labels = train.images, np.asarray(train.labels, np.int64)
    rows = [score(images, labels, k, seed) for k in args.k for seed in args.seeds]

    print("| k | purity (seeds) | NMI (seeds) | cluster sizes, images |")
    print("|--:|:--|:--|:--|")
    for k in args.k:
        mine = [row for row in rows if row["k"] == k]
        print(
            f"| {k} | {statistics.mean(r['purity'] for r in mine):.3f} ("
            + " / ".join(f"{r['purity']:.3f}" for r in mine)
            + f") | {statistics.mean(r['nmi'] for r in mine):.3f} ("
            + " / ".join(f"{r['nmi']:.3f}" for r in mine)
            + f") | {min(r['smallest_cluster'] for r in mine)}–{max(r['largest_cluster'] for r in mine)} |"
        )
    if args.json:
        write_json(args.json, {"revision": git_revision(), "machine": machine(torch.device("cpu")),
                               "images": len(labels), "classes": data.num_classes, "runs": rows})


if __name__ == "__main__":
    main()
