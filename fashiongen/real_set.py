"""Which real images the evaluation scores against, and how many: the real-set rule.

FID, KID and precision/recall compare generated images with real ones the
generator was not judged on. The held-out test split is the natural choice,
but a small photo folder's test split (10% of 600 photos: about 60) is far
below ``evaluate.num_samples`` (N, at least 100). StyleGAN2-ADA met the same
problem on its small datasets (MetFaces: 1,336 images) and scored against
every real image there is (``fid50k_full``: 50k generated images against the
full dataset). The rule here:

- ``test``: when the test split *and* the training split each hold at least N
  images, N random test images are the reference and N random training images
  stand in for a perfect generator (the real-vs-real floor). This is the
  pipeline's measurement on Fashion-MNIST, unchanged.
- ``full``: otherwise, R = min(N, train + test) random images of both splits
  are the reference and the floor compares one random half of them with the
  other half (R // 2 images each side, as no other real images are left).

N images are generated either way; precision and recall use the first R of
them, since their k-NN radii depend on the size of each set (Kynkäänniemi et
al., 2019, compare equal numbers). Against the full set the reference holds
the images the generator was trained on, so, as with ``fid50k_full``, a
generator that copies its training images scores well: the floor and the
numbers are only comparable between runs with the same real set and count,
which ``fashiongen compare`` enforces.

Pure Python (no torch): the download stage checks a folder with it in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from fashiongen.errors import DataError

MIN_REAL_IMAGES = 100  # = evaluate.num_samples' minimum: FID/KID/precision-recall of fewer images measure noise
TEST, FULL = "test", "full"


@dataclass(frozen=True)
class RealSet:
    """What one evaluation scores against (recorded in ``metrics.json``).

    ``name``: ``test`` or ``full``; ``count``: real images the samples are
    compared with (R); ``floor_count``: real images on each side of the
    real-vs-real floor; ``num_samples``: generated images (N).
    """

    name: str
    count: int
    floor_count: int
    num_samples: int


def choose_real_set(n_train: int, n_test: int, num_samples: int) -> RealSet:
    """The rule in the module doc, for splits of ``n_train`` and ``n_test`` images (no checks)."""
    if n_test >= num_samples and n_train >= num_samples:
        return RealSet(TEST, num_samples, num_samples, num_samples)
    count = min(num_samples, n_train + n_test)
    return RealSet(FULL, count, count // 2, num_samples)


def real_set_problems(n_train: int, n_test: int, num_samples: int, pr_neighbours: int) -> list[str]:
    """Why an evaluation of these splits cannot work (one sentence with its fix each); empty when it can."""
    real = choose_real_set(n_train, n_test, num_samples)
    if real.count < MIN_REAL_IMAGES:
        return [
            f"the evaluation needs at least {MIN_REAL_IMAGES} real images and there are {n_train + n_test} "
            f"({n_train} training + {n_test} test; FID, KID and precision/recall of fewer measure noise): "
            "add images (or raise data.subset)"
        ]
    if real.floor_count <= pr_neighbours:
        return [
            f"evaluate.pr_neighbours={pr_neighbours} needs more than {pr_neighbours} real images on each side of "
            f"the real-vs-real floor, which holds {real.floor_count} ({real.name} real set of {real.count}): "
            f"set evaluate.pr_neighbours to at most {real.floor_count - 1} (default 3) or add images"
        ]
    return []


def plan_real_set(n_train: int, n_test: int, num_samples: int, pr_neighbours: int) -> RealSet:
    """:func:`choose_real_set`, or a :class:`DataError` saying why it cannot be scored and what to change."""
    problems = real_set_problems(n_train, n_test, num_samples, pr_neighbours)
    if problems:
        raise DataError("cannot evaluate: " + "; ".join(problems) + ".")
    return choose_real_set(n_train, n_test, num_samples)
