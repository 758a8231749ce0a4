"""model.condition cluster: pixel k-means codes in training, an unconditional generator afterwards."""


import numpy as np
import pytest
import torch

from fashiongen.analysis.truncation import truncate
from fashiongen.clustering import cluster_shares, pixel_clusters, pixel_features
from fashiongen.config import parse_params
from fashiongen.gan.artifact import load_generator
from fashiongen.gan.conditions import KINDS
from fashiongen.gan.sampling import noise
from fashiongen.models.conditioning import CHOICE_BITS, ClusterPriorGenerator, ConditionalGenerator
from helpers import make_prepared, make_training_root, train_and_evaluate


def blobs(n_per_group: int, size: int, channels: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images of three groups (dark, mid, bright, with noise), shuffled: (uint8 N×C×size×size, group of each)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(3), n_per_group)
    rng.shuffle(groups)
    images = rng.integers(0, 30, (len(groups), channels, size, size)) + groups[:, None, None, None] * 100
    return images.astype(np.uint8), groups


@pytest.mark.parametrize("size, channels", [(28, 1), (64, 3)])
def test_kmeans_finds_the_groups_in_any_order(size, channels):
    images, groups = blobs(40, size, channels)
    take = lambda index: torch.from_numpy(images[np.asarray(index)])  # noqa: E731
    found = pixel_clusters(take, len(images), k=3, seed=0)
    assert found.dtype == np.int64 and sorted(np.unique(found)) == [0, 1, 2]
    for group in range(3):  # one cluster per group, a different one for each
        assert len(np.unique(found[groups == group])) == 1
    assert len({int(found[groups == g][0]) for g in range(3)}) == 3
    assert np.array_equal(found, pixel_clusters(take, len(images), k=3, seed=0))  # deterministic


def test_features_are_area_averaged_to_16_px_in_unit_range():
    images = np.full((5, 3, 64, 64), 255, np.uint8)
    images[:, :, :32] = 0  # top half black
    features = pixel_features(lambda i: torch.from_numpy(images[np.asarray(i)]), 5)
    assert features.shape == (5, 3 * 16 * 16) and features.dtype == np.float32
    grid = features[0].reshape(3, 16, 16)
    assert np.all(grid[:, :8] == 0.0) and np.all(grid[:, 8:] == 1.0)
    small = np.zeros((4, 1, 12, 12), np.uint8)  # smaller than 16 px: as it is
    assert pixel_features(lambda i: torch.from_numpy(small[np.asarray(i)]), 4).shape == (4, 144)


def prior_generator(shares):
    base = lambda z, code: z[:, :1, None, None] + code.sum(1)[:, None, None, None]  # noqa: E731
    inner = ConditionalGenerator(base, torch.nn.Embedding(len(shares), 2))
    generator = ClusterPriorGenerator(inner, len(shares))
    generator.set_shares(torch.tensor(shares))
    return generator


@pytest.mark.parametrize("psi", [1.0, 0.5])
def test_sampled_clusters_follow_the_training_shares_at_any_truncation(psi):
    shares = [0.5, 0.3, 0.15, 0.05]
    generator = prior_generator(shares)
    z = truncate(noise(40_000, 8 + CHOICE_BITS, 3), psi)
    drawn = generator.choose(z)
    observed = np.bincount(drawn.numpy(), minlength=4) / len(drawn)
    # binomial standard error at 40,000 draws is at most 0.0025: 4 of them
    np.testing.assert_allclose(observed, shares, atol=0.01)


def test_the_choice_uses_only_its_own_noise_columns():
    generator = prior_generator([0.25, 0.25, 0.25, 0.25])
    z = noise(2000, 8 + CHOICE_BITS, 5)
    flipped = z.clone()
    flipped[:, :8] *= -1  # the inner network's columns: the choice must not move
    assert torch.equal(generator.choose(z), generator.choose(flipped))
    base_columns = z[:, :8]
    for cluster in range(4):  # the columns the inner network sees are alike in every cluster
        mean = base_columns[generator.choose(z) == cluster].mean(0)
        assert mean.abs().max() < 0.25


def test_given_clusters_are_used_and_the_choice_columns_ignored():
    generator = prior_generator([0.5, 0.5])
    z = noise(6, 4 + CHOICE_BITS, 0)
    c = torch.tensor([0, 1, 0, 1, 1, 0])
    other = z.clone()
    other[:, -CHOICE_BITS:] = -other[:, -CHOICE_BITS:]
    assert torch.equal(generator(z, c), generator(other, c))
    chosen = generator.choose(z)
    assert torch.equal(generator(z, z[:, :0]), generator(z, chosen))


def test_shares_are_the_cluster_sizes():
    assert cluster_shares(np.array([0, 0, 2, 2, 2, 2]), 3).tolist() == [pytest.approx(1 / 3), 0.0, pytest.approx(2 / 3)]


def cluster_params(**model):
    return parse_params(
        {
            "model": {"g_width": 8, "d_width": 8, "z_dim": 16, "condition": "cluster", "embed_dim": 8, "clusters": 4,
                      **model},
            "train": {"epochs": 2, "batch_size": 32, "log_every": 2, "eval_samples": 100, "device": "cpu"},
            "evaluate": {"num_samples": 100, "kid_subset_size": 50, "diversity_groups": 8, "diversity_per_group": 4,
                         "truncation": [1.0, 0.7]},
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny cluster run, trained and evaluated once for the module."""
    root = make_training_root(tmp_path_factory.mktemp("clusters"))
    run, last, metrics = train_and_evaluate(root, cluster_params(), "cluster")
    return root, run, last, metrics


def test_a_cluster_generator_trains_without_nan_and_samples_unconditionally(trained):
    root, run, last, metrics = trained
    assert all(np.isfinite(v) for v in last.values() if isinstance(v, float))
    loaded = load_generator(run.generator)
    assert loaded.spec.condition == "cluster" and loaded.spec.num_classes == 4
    assert loaded.spec.z_dim == 16 + CHOICE_BITS
    # the shares it samples are those of the training images' clusters (192 images of make_prepared)
    images = np.load(root / "prepared" / "train_images.npy")
    expected = cluster_shares(pixel_clusters(lambda i: torch.from_numpy(images[np.asarray(i)]), len(images), 4, 0), 4)
    torch.testing.assert_close(torch.diff(loaded.module.cluster_cdf, prepend=torch.zeros(1)), expected)
    # scored like an unconditional generator: FID and friends, no class consistency
    assert np.isfinite(metrics["fid"]) and "class_consistency" not in metrics
    assert (run.results / "samples" / "epoch_0002.png").is_file()
    with torch.no_grad():
        samples = loaded.module(noise(8, loaded.spec.z_dim, 0), torch.empty(8, 0))
    assert samples.shape == (8, 1, 28, 28) and torch.isfinite(samples).all()


def test_cluster_generator_refuses_label_and_like(trained, tmp_path):
    from fashiongen.cli import main

    root, run, _, _ = trained
    out = tmp_path / "s.npz"
    assert main(["generate", "--checkpoint", str(run.generator), "--n", "4", "--out", str(out), "--device", "cpu"]) == 0
    assert np.load(out)["images"].shape == (4, 1, 28, 28)
    assert main(["generate", "--checkpoint", str(run.generator), "--label", "3", "--out", str(tmp_path / "x.npz")]) == 2


def test_small_data_gets_fewer_clusters_of_at_least_20_images():
    from fashiongen.clustering import cluster_count

    assert cluster_count(100, 60_000) == 100 and cluster_count(100, 1_000) == 50
    assert cluster_count(100, 45) == 2 and cluster_count(100, 10) == 1
    kind = KINDS["cluster"]
    values = kind.training_values(np.zeros(45, np.int64), 1, None,
                                  lambda i: torch.randint(0, 255, (len(i), 1, 4, 4), dtype=torch.uint8), 100, 0)
    assert sorted(torch.unique(values).tolist()) == [0, 1]


def test_auto_is_label_on_labelled_data_and_cluster_without_labels():
    from fashiongen.errors import ConfigError
    from fashiongen.config import uses_encoder
    from fashiongen.gan.conditions import kind_for

    assert parse_params({}).model.condition == "auto"
    assert kind_for("auto", labelled=True).name == "label" and kind_for("auto", labelled=False).name == "cluster"
    assert all(kind_for(name, labelled).name == name for name in KINDS for labelled in (True, False))
    assert not uses_encoder("auto") and uses_encoder("encoding") and not uses_encoder("cluster")
    with pytest.raises(ConfigError, match="unknown model.condition 'labels'; choose one of none, label, .* or auto"):
        kind_for("labels", labelled=True)


def unlabelled(prepared):
    """``prepared`` (of :func:`make_prepared`) as a folder without class subfolders is prepared: one class, no labels."""
    import json

    meta = json.loads((prepared / "meta.json").read_text())
    meta.update({"classes": ["image"], "num_classes": 1, "labelled": False})
    (prepared / "meta.json").write_text(json.dumps(meta))
    for split in ("train", "test"):
        labels = np.load(prepared / f"{split}_labels.npy")
        np.save(prepared / f"{split}_labels.npy", np.zeros_like(labels))


@pytest.mark.parametrize("labelled, trained_as", [(True, "label"), (False, "cluster")])
def test_the_default_condition_trains_what_the_data_allows_and_the_generator_records_it(tmp_path, labelled,
                                                                                          trained_as):
    import os

    from fashiongen.pipeline.train import train_gan
    from helpers import paths, tiny_train_params

    make_prepared(tmp_path / "prepared")
    if not labelled:
        unlabelled(tmp_path / "prepared")
    run = paths(tmp_path)
    cwd = os.getcwd()
    os.chdir(tmp_path)  # dvclive looks for a repository from the working directory
    try:
        train_gan(tiny_train_params(epochs=1, eval_every=0), run)
    finally:
        os.chdir(cwd)
    spec = load_generator(run.generator).spec
    assert spec.condition == trained_as and spec.num_classes == (10 if labelled else 9)  # 192 images: 9 clusters of 20+
    assert load_generator(run.generator).params["model"]["condition"] == trained_as
