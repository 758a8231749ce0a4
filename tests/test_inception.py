"""evaluate.features: inception — the standard FID network, read from a weights file the user provides.

The published weights cannot be downloaded here, so the plumbing is tested with
a file of the same architecture and random values: every shape, the feature
dimension, the ruler's id and the error paths are the real ones; the numbers
are not meaningful FIDs, and the tests do not pretend they are. The network's
input size is lowered from 299 to 75 px (its smallest valid input) for the
tests only: 16 times fewer FLOPs, the same layers and outputs.
"""

import json
from pathlib import Path

import pytest
import torch

from fashiongen.config import Params
from fashiongen.errors import CheckpointError
from fashiongen.pipeline.evaluate import EvaluatePaths, evaluate
from fashiongen.gan.artifact import GeneratorSpec, build_generator, save_generator
from fashiongen.metrics.inception import WEIGHTS_FILE, WEIGHTS_URL, InceptionFeatures, cached_weights_path

from helpers import make_evaluator, make_prepared


@pytest.fixture(scope="module", autouse=True)
def small_inputs():
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FeatureExtractorInceptionV3, "INPUT_IMAGE_SIZE", 75)
        yield


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    """A state dict of torch-fidelity's FID Inception-V3 with random values (its constructor's download bypassed)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity

    original_load = fidelity.FeatureExtractorInceptionV3.load_state_dict
    original_url = fidelity.load_state_dict_from_url
    fidelity.FeatureExtractorInceptionV3.load_state_dict = lambda self, state_dict: None
    fidelity.load_state_dict_from_url = lambda *args, **kwargs: {}
    try:
        torch.manual_seed(0)
        network = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    finally:
        fidelity.FeatureExtractorInceptionV3.load_state_dict = original_load
        fidelity.load_state_dict_from_url = original_url
    path = tmp_path_factory.mktemp("inception") / WEIGHTS_FILE
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def pipeline_outputs(tmp_path_factory) -> Path:
    """Prepared data, an evaluator and an untrained generator: all the evaluate stage reads."""
    root = tmp_path_factory.mktemp("evaluate_inception")
    make_prepared(root / "prepared")
    torch.manual_seed(0)
    make_evaluator(root / "evaluator.pt")
    spec = GeneratorSpec(z_dim=16, width=8, channels=1, image_size=28)
    save_generator(root / "generator.pt", build_generator(spec), spec, [str(i) for i in range(10)], {})
    return root


def run_evaluate(root: Path, **evaluate_params) -> dict:
    cfg = Params.model_validate(
        {"evaluate": {"num_samples": 100, "kid_subsets": 10, "kid_subset_size": 50, **evaluate_params}}
    ).evaluate
    paths = EvaluatePaths(
        prepared=root / "prepared", evaluator=root / "evaluator.pt", generator=root / "generator.pt",
        metrics=root / "metrics.json", samples=root / "samples.png",
    )
    return evaluate(cfg, paths, device_name="cpu")


def test_inception_features_of_grey_images_are_2048_wide_and_deterministic(random_weights):
    inception = InceptionFeatures(random_weights)
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    features, logits = inception.extract(images, batch_size=2)
    assert features.shape == (5, 2048) and logits.shape == (5, 1008)
    again, _ = inception.extract(images, batch_size=5)
    assert torch.allclose(features, again, atol=1e-4)
    assert inception.id.startswith("inception-") and len(inception.id) == len("inception-") + 16


def test_evaluate_scores_in_inception_space_and_names_the_ruler(pipeline_outputs, random_weights):
    metrics = run_evaluate(pipeline_outputs, features="inception", inception_weights=str(random_weights))
    assert metrics["features"] == InceptionFeatures(random_weights).id
    assert metrics["features_recipe"] == metrics["features"]
    written = json.loads((pipeline_outputs / "metrics.json").read_text())
    assert written["features"] == metrics["features"]
    # an untrained generator is far from the data; the real-vs-real floor is much closer
    assert metrics["fid"] > metrics["fid_floor"] >= 0
    evaluator_metrics = run_evaluate(pipeline_outputs)
    assert evaluator_metrics["features"].startswith("evaluator-")
    assert evaluator_metrics["fid"] != metrics["fid"]


def test_missing_weights_name_the_file_the_url_and_the_offline_alternative(pipeline_outputs, tmp_path):
    (pipeline_outputs / "metrics.json").write_text('{"fid": 1.0}')
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(CheckpointError) as error:
        run_evaluate(pipeline_outputs, features="inception", inception_weights=str(missing))
    message = str(error.value)
    assert str(missing) in message and WEIGHTS_URL in message and "evaluate.features: evaluator" in message
    assert (pipeline_outputs / "metrics.json").read_text() == '{"fid": 1.0}'  # nothing already there was touched


def test_without_a_path_the_torch_cache_is_where_it_looks(pipeline_outputs, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert cached_weights_path() == tmp_path / "torch" / "hub" / "checkpoints" / WEIGHTS_FILE
    with pytest.raises(CheckpointError, match="torch's cache"):
        run_evaluate(pipeline_outputs, features="inception")


def test_a_file_that_is_not_the_inception_weights_is_refused(pipeline_outputs, tmp_path):
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(10, 128)}, wrong)
    with pytest.raises(CheckpointError, match="not the FID Inception-V3 weights"):
        run_evaluate(pipeline_outputs, features="inception", inception_weights=str(wrong))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable"):
        run_evaluate(pipeline_outputs, features="inception", inception_weights=str(garbage))
