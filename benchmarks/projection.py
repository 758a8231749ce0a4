"""How close `fashiongen project` gets to held-out photos, against the nearest of many random samples (issue 40).

For ``--photos`` Fashion-MNIST test images (held out from training; every
``10000 / photos``-th of the test split), on the workspace's trained generator
(models/generator.pt) and evaluator (models/evaluator.pt):

- the projection (:func:`fashiongen.projection.project_image`, the CLI's
  settings: ``--steps``, default 300) and its distance to the photo, with the
  wall and CPU seconds it took;
- the nearest of ``--samples`` random samples of the generator (seeded noise,
  classes cycling 0..9 as ``fashiongen generate`` draws them), nearest in the
  same distance (:class:`fashiongen.projection.Ruler`);
- for scale, the distance between two different photos of the set.

Reports the mean and median of both distances, the ratio of the means, the
median of the per-photo ratios, how often the projection is the closer, and
seconds per photo. ``--grid`` writes rows photo / projection / nearest sample.

    python benchmarks/projection.py --json docs/results/projection.json --grid docs/images/projection.png
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import asdict, replace

import numpy as np
import torch

from common import REPO_ROOT, git_revision, machine, write_json


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=30, help="held-out test images to project (default 30)")
    parser.add_argument("--samples", type=int, default=10_000, help="random samples to find the nearest in")
    parser.add_argument("--steps", type=int, default=None, help="Adam steps (default: the CLI's)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--grid", help="also write photo / projection / nearest sample rows (8 photos) to this PNG")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from fashiongen.gan.artifact import load_generator
    from fashiongen.gan.sampling import generate_uint8, noise
    from fashiongen.images import save_grid
    from fashiongen.projection import Settings, load_ruler, project_image

    load_before = os.getloadavg()
    loaded = load_generator(REPO_ROOT / "models/generator.pt")
    ruler = load_ruler(REPO_ROOT / "models/evaluator.pt", loaded)
    images = np.load(REPO_ROOT / "data/prepared/test_images.npy", mmap_mode="r")
    labels = np.load(REPO_ROOT / "data/prepared/test_labels.npy")
    index = np.arange(args.photos) * (len(images) // args.photos)
    photos = torch.from_numpy(np.array(images[index]))
    settings = Settings() if args.steps is None else replace(Settings(), steps=args.steps)

    projected, reconstructions, wall, cpu, chosen = [], [], [], [], []
    for photo in photos:
        start, start_cpu = time.perf_counter(), time.process_time()
        latent, image, _ = project_image(loaded, ruler, photo, settings)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        projected.append(latent.distance)
        reconstructions.append(image)
        chosen.append(int(latent.cond))
        print(f"photo {len(projected)}/{args.photos}: distance {latent.distance:.4f} in {wall[-1]:.1f} s", flush=True)

    start = time.perf_counter()
    cond = torch.arange(args.samples) % loaded.spec.num_classes
    samples = generate_uint8(loaded.module, noise(args.samples, loaded.spec.z_dim, 1), 1000, "cpu", cond)
    to_samples = ruler.pairwise(photos, samples)
    nearest, which = to_samples.min(1)
    sampling_s = time.perf_counter() - start
    between = ruler.pairwise(photos, photos)
    off_diagonal = between[~torch.eye(len(photos), dtype=torch.bool)]

    ratios = [p / n for p, n in zip(projected, nearest.tolist())]
    result = {
        "what": "fashiongen project on held-out Fashion-MNIST test images vs the nearest of N random samples",
        "generator": "models/generator.pt", "condition": loaded.spec.condition,
        "settings": asdict(settings),
        "photos": args.photos, "test_indices": index.tolist(), "samples": args.samples,
        "distance": "||f(a)/|f(a)| - f(b)/|f(b)|||^2 + mean((a-b)^2), evaluator penultimate features, pixels in [-1, 1]",
        "projection_mean": statistics.fmean(projected), "projection_median": statistics.median(projected),
        "nearest_sample_mean": float(nearest.mean()), "nearest_sample_median": float(nearest.median()),
        "ratio_of_means": statistics.fmean(projected) / float(nearest.mean()),
        "median_ratio": statistics.median(ratios), "worst_ratio": max(ratios),
        "projection_closer_share": sum(r < 1 for r in ratios) / len(ratios),
        "between_photos_mean": float(off_diagonal.mean()),
        "chosen_class_is_the_photos_label": float(np.mean(np.array(chosen) == labels[index])),
        "seconds_per_photo_wall_mean": statistics.fmean(wall), "seconds_per_photo_wall_median": statistics.median(wall),
        "cpu_seconds_per_photo_mean": statistics.fmean(cpu),
        "sampling_and_nearest_search_s": sampling_s,
        "per_photo": [{"index": int(i), "projection": p, "nearest_sample": float(n), "wall_s": w}
                      for i, p, n, w in zip(index, projected, nearest.tolist(), wall)],
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "machine": machine(torch.device("cpu")), "revision": git_revision(),
    }
    for key, value in result.items():
        if key not in ("per_photo", "test_indices"):
            print(f"{key}: {value}")
    if args.json:
        write_json(args.json, result)
    if args.grid:
        shown = min(8, args.photos)
        rows = torch.cat([photos[:shown], torch.stack(reconstructions[:shown]), samples[which[:shown]]])
        save_grid(args.grid, rows, nrow=shown)


if __name__ == "__main__":
    main()
