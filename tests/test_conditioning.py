"""Conditioning: label and encoding generators train, score and generate; the encoder stages are lazy."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fashiongen.config import parse_params
from fashiongen.data.image_files import load_image, match_background
from fashiongen.encoding import load_encoder
from fashiongen.pipeline.encode import encode_dataset
from fashiongen.pipeline.train_encoder import train_encoder
from fashiongen.errors import ConfigError, DataError
from fashiongen.evaluation import class_consistency, diversity, mean_pairwise_distance
from fashiongen.gan.artifact import load_generator
from fashiongen.generation import resolve_label
from fashiongen.models.factory import build_discriminator
from helpers import REPO_ROOT, make_prepared, make_training_root, train_and_evaluate

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def conditional_params(condition, **encoder):
    return parse_params(
        {
            "model": {"g_width": 8, "d_width": 8, "z_dim": 16, "condition": condition, "embed_dim": 8},
            "encoder": {"dim": 16, "epochs": 1, "batch_size": 32, **encoder},
            "train": {"epochs": 2, "batch_size": 32, "log_every": 2, "eval_samples": 100, "device": "cpu"},
            "evaluate": {"num_samples": 100, "kid_subset_size": 50, "diversity_groups": 8, "diversity_per_group": 4},
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One label run and one encoding run (with its encoder and encodings), trained once for the module."""
    root = make_training_root(tmp_path_factory.mktemp("conditioning"))
    runs = {}
    for condition in ("label", "encoding"):
        params = conditional_params(condition)
        train_encoder(params, root / "prepared", root / "encoder.pt", root / "encoder_metrics.json")
        encode_dataset(params, root / "prepared", root / "encoder.pt", root / "encodings")
        run, _, metrics = train_and_evaluate(root, params, condition)
        runs[condition] = (run, metrics)
    return root, runs


@pytest.mark.parametrize("condition", ["label", "encoding"])
def test_conditional_generator_trains_and_reports_condition_metrics(trained, condition):
    root, runs = trained
    run, metrics = runs[condition]
    loaded = load_generator(run.generator)
    assert loaded.spec.condition == condition and loaded.spec.num_classes == 10
    if condition == "encoding":
        assert loaded.spec.cond_dim == 16 and loaded.spec.encoder == load_encoder(root / "encoder.pt").id
    assert 0.0 <= metrics["class_consistency"] <= 1.0
    assert metrics["diversity"] > 0.0 and np.isfinite(metrics["fid"])
    assert (run.results / "samples" / "epoch_0002.png").is_file()


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "fashiongen", *args], cwd=cwd, capture_output=True, text=True)


def test_generate_a_named_class(trained, tmp_path):
    root, runs = trained
    result = cli("generate", "--checkpoint", str(runs["label"][0].generator), "--label", "7", "--n", "6",
                 "--out", str(tmp_path / "s.npz"), "--device", "cpu", cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "s.npz")["images"].shape == (6, 1, 28, 28)


def test_generate_like_a_user_photo_of_another_size_and_mode(trained, tmp_path):
    root, runs = trained
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 200, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "like.npz"
    result = cli("generate", "--checkpoint", str(runs["encoding"][0].generator), "--encoder", str(root / "encoder.pt"),
                 "--like", str(photo), "--n", "5", "--out", str(out), "--device", "cpu", cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    images = np.load(out)["images"]
    assert images.shape == (5, 1, 28, 28)
    assert len({image.tobytes() for image in images}) == 5  # the noise still varies the samples


def test_generate_like_a_non_image_is_one_clear_error(trained, tmp_path):
    root, runs = trained
    bogus = tmp_path / "notes.png"
    bogus.write_text("not an image at all")
    out = tmp_path / "never.png"
    result = cli("generate", "--checkpoint", str(runs["encoding"][0].generator), "--encoder", str(root / "encoder.pt"),
                 "--like", str(bogus), "--out", str(out), cwd=REPO_ROOT)
    assert result.returncode == 2
    assert "notes.png is not a readable image" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_condition_flags_that_do_not_fit_the_generator_are_refused(trained, tmp_path):
    root, runs = trained
    label_run, encoding_run = runs["label"][0], runs["encoding"][0]
    wrong = cli("generate", "--checkpoint", str(label_run.generator), "--like", "x.png", "--out", "a.png", cwd=tmp_path)
    assert wrong.returncode == 2 and "--like needs a generator trained with model.condition: encoding" in wrong.stderr
    missing = cli("generate", "--checkpoint", str(encoding_run.generator), "--out", "a.png", cwd=tmp_path)
    assert missing.returncode == 2 and "pass --like IMAGE" in missing.stderr


@pytest.mark.parametrize("arch, norm", [("dcgan", "batch"), ("upsample", "none")])
@pytest.mark.parametrize("condition, cond_dim", [("label", 0), ("encoding", 16)])
def test_projection_term_is_the_condition_against_the_channel_sums_of_the_feature_map(arch, norm, condition, cond_dim):
    torch.manual_seed(0)
    D = build_discriminator(arch, 8, 1, 28, norm, False, None, condition, 10, cond_dim).eval()
    images = torch.randn(5, 1, 28, 28)
    cond = torch.arange(5) if condition == "label" else torch.randn(5, cond_dim)
    feature_map = D.base.features[:-1](images) if arch == "dcgan" else D.base.features[:-2](images)
    assert feature_map.dim() == 4 and feature_map.shape[1] == D.base.feature_channels
    expected = D.base(images) + (D.project(cond) * feature_map.sum(dim=(2, 3))).sum(dim=1)
    torch.testing.assert_close(D(images, cond), expected)
    assert D.project.weight.shape[-1 if condition == "label" else 0] == D.base.feature_channels


def test_resolve_label_accepts_indices_and_forgiving_names():
    assert resolve_label("7", FASHION_CLASSES) == 7
    assert resolve_label("sneaker", FASHION_CLASSES) == 7
    assert resolve_label("ankle-boot", FASHION_CLASSES) == 9
    assert resolve_label("t-shirt", FASHION_CLASSES) == 0  # a unique prefix
    with pytest.raises(ConfigError, match="out of range"):
        resolve_label("10", FASHION_CLASSES)
    with pytest.raises(ConfigError, match="names no single class; choose one of 0=T-shirt/top"):
        resolve_label("s", FASHION_CLASSES)  # Sandal, Shirt, Sneaker


def test_class_consistency_counts_the_asked_class():
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0], [5.0, 0.0]])
    assert class_consistency(logits, np.array([0, 1, 1, 1])) == 0.5


def test_mean_pairwise_distance_ignores_the_diagonal():
    group = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])  # two points 5 apart
    assert torch.allclose(mean_pairwise_distance(group), torch.tensor([5.0]))


def test_diversity_is_zero_for_a_generator_that_ignores_the_noise():
    class Copier(torch.nn.Module):
        def forward(self, z, cond):
            return cond.view(-1, 1, 1, 1).float().div(5).sub(1).expand(-1, 1, 28, 28)

    from types import SimpleNamespace

    labels = np.arange(40) % 10
    test = SimpleNamespace(images=np.random.default_rng(0).integers(0, 256, (40, 1, 28, 28), dtype=np.uint8))
    cfg = parse_params({"evaluate": {"diversity_groups": 5, "diversity_per_group": 4}}).evaluate

    def features(images):  # a batch of images (tensor) or a view of the reference set (rows read with take)
        rows = images if isinstance(images, torch.Tensor) else images.take(np.arange(len(images)))
        flat = torch.as_tensor(rows).float().flatten(1)
        return flat, flat

    from fashiongen.data.batches import as_images

    value = diversity(Copier(), 4, torch.as_tensor(labels), labels, cfg, as_images(test.images), features, "cpu")
    assert value == 0.0


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_unused_encoder_stages_write_the_same_placeholder_whatever_the_encoder_params(tmp_path):
    make_prepared(tmp_path / "prepared")
    outputs = []
    for encoder in ({"dim": 16}, {"dim": 32, "arch": "resnet34", "epochs": 3}):
        params = conditional_params("none", **encoder)
        folder = tmp_path / f"out{len(outputs)}"
        train_encoder(params, tmp_path / "prepared", folder / "encoder.pt", folder / "metrics.json")
        encode_dataset(params, tmp_path / "prepared", folder / "encoder.pt", folder / "encodings")
        outputs.append([sha(folder / "encoder.pt"), sha(folder / "encodings/meta.json")])
    assert outputs[0] == outputs[1]
    assert json.loads((tmp_path / "out0/encodings/meta.json").read_text()) == {"used": False}


def test_imagenet_weights_missing_from_the_cache_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    make_prepared(tmp_path / "prepared")
    params = conditional_params("encoding", weights="imagenet")
    with pytest.raises(ConfigError) as info:
        train_encoder(params, tmp_path / "prepared", tmp_path / "encoder.pt", tmp_path / "metrics.json")
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(expected) in str(info.value) and "encoder.weights: fashion" in str(info.value)
    assert not (tmp_path / "encoder.pt").exists()


def test_imagenet_weights_in_the_cache_are_the_starting_point(tmp_path, monkeypatch):
    import torchvision

    from fashiongen.pipeline.train_encoder import load_imagenet_backbone
    from fashiongen.models.encoder import Encoder

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), cached)
    model = Encoder("resnet18", 16, 10, 1)
    load_imagenet_backbone(model, "resnet18")
    assert torch.equal(model.backbone.conv1.weight, reference.conv1.weight)


def test_load_image_converts_any_mode_and_size(tmp_path):
    rgba = tmp_path / "x.png"
    Image.new("RGBA", (64, 30), (255, 255, 255, 255)).save(rgba)
    grey = load_image(rgba, 28, 1)
    assert grey.shape == (1, 28, 28) and grey.dtype == np.uint8 and grey.min() == 255
    assert match_background(grey, dark_background=True).max() == 0  # white product shot -> dark background
    assert load_image(rgba, 64, 3).shape == (3, 64, 64)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=400), keep=st.integers(0, 400))
def test_image_loader_fuzz_gives_an_image_or_a_data_error(tmp_path, data, keep):
    """Random bytes, and valid PNGs cut short or with bytes replaced: never anything but an image or DataError."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.full((9, 7), 100, np.uint8)).save(buffer, format="PNG")
    png = buffer.getvalue()
    for blob in (data, png[:keep], png[:keep] + data):
        path = tmp_path / "fuzz.png"
        path.write_bytes(blob)
        try:
            image = load_image(path, 28, 1)
        except DataError as exc:
            assert "fuzz.png is not a readable image" in str(exc)
        else:
            assert image.shape == (1, 28, 28) and image.dtype == np.uint8
