"""params.yaml validation: typos, types and ranges fail with the key named."""

import subprocess
import sys

import pytest

from fashiongen.config import Params, load_params, parse_params
from fashiongen.errors import ConfigError
from fashiongen.profiles import apply_overrides, available, load_profile
from fashiongen.real_set import choose_real_set
from helpers import REPO_ROOT


def test_committed_params_file_is_valid_and_explicit():
    params = load_params(REPO_ROOT / "params.yaml")
    assert isinstance(params, Params)
    # every knob is written out in params.yaml, not left to a code default
    from fashiongen.config import read_yaml

    raw = read_yaml(REPO_ROOT / "params.yaml")
    for section, model in Params.model_fields.items():
        assert set(raw[section]) == set(model.annotation.model_fields), section


def test_misspelt_key_is_named_with_a_suggestion():
    with pytest.raises(ConfigError) as info:
        parse_params({"train": {"epoch": 3}})
    message = str(info.value)
    assert "train.epoch: unknown key" in message
    assert "Did you mean 'train.epochs'?" in message


def test_a_moved_key_names_its_new_place():
    with pytest.raises(ConfigError) as error:
        parse_params({"train": {"preload_max_gb": 4.0}})
    assert "train.preload_max_gb: moved to data.preload_max_gb" in str(error.value)
    assert parse_params({"data": {"preload_max_gb": 4.0}}).data.preload_max_gb == 4.0


def test_unknown_section_is_named():
    with pytest.raises(ConfigError, match=r"trian: unknown key. Did you mean 'train'"):
        parse_params({"trian": {}})


@pytest.mark.parametrize(
    ("raw", "key", "fragment"),
    [
        ({"train": {"epochs": "10"}}, "train.epochs", "valid integer"),
        ({"train": {"epochs": 2.5}}, "train.epochs", "valid integer"),
        ({"train": {"batch_size": 0}}, "train.batch_size", "greater than or equal to 2"),
        ({"train": {"lr_g": -1.0}}, "train.lr_g", "greater than 0"),
        ({"train": {"device": "gpu"}}, "train.device", "'auto', 'cpu' or 'cuda'"),
        ({"model": {"loss": "wasserstein"}}, "model.loss", "'bce', 'lsgan', 'hinge', 'wgan-gp' or 'rpgan'"),
        ({"train": {"augment": ["rotate"]}}, "train.augment.0", "'color', 'translation' or 'cutout'"),
        ({"train": {"ema_rampup": 0.0}}, "train.ema_rampup", "greater than 0"),
        ({"model": {"reg_every": 0}}, "model.reg_every", "greater than or equal to 1"),
        ({"data": {"subset": 5}}, "data.subset", "greater than or equal to 50"),
        ({"evaluate": {"num_samples": True}}, "evaluate.num_samples", "valid integer"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(raw, key, fragment):
    with pytest.raises(ConfigError) as info:
        parse_params(raw)
    assert f"{key} = " in str(info.value)
    assert fragment in str(info.value)


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as info:
        parse_params({"train": {"epoch": 1, "batch_size": -1}, "model": {"z_dim": "x"}})
    assert "3 problems" in str(info.value)


def test_gradient_penalty_with_batch_norm_is_refused():
    with pytest.raises(ConfigError, match=r"model.d_norm = 'batch' with model.loss = 'wgan-gp'.*set model.d_norm to 'layer'"):
        parse_params({"model": {"loss": "wgan-gp", "d_norm": "batch"}})
    assert parse_params({"model": {"loss": "wgan-gp"}}).model.resolved_d_norm() == "layer"


def test_num_samples_above_the_subset_is_scored_against_the_full_set_not_refused():
    params = parse_params({"data": {"subset": 2000}})  # 2,000 test images < N = 10,000
    real = choose_real_set(2000, 2000, params.evaluate.num_samples)
    assert (real.name, real.count, real.floor_count, real.num_samples) == ("full", 4000, 2000, 10000)


def test_yaml_1_2_scientific_notation_is_a_number(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr_g: 2e-4\n")
    assert load_params(path).train.lr_g == pytest.approx(2e-4)


def test_syntax_error_and_missing_file_are_clear(tmp_path):
    broken = tmp_path / "params.yaml"
    broken.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_params(broken)
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "missing.yaml")


def test_tiny_profile_is_valid():
    raw = load_params(REPO_ROOT / "params.yaml").model_dump()
    tiny = parse_params(apply_overrides(raw, load_profile("tiny")))
    assert tiny.data.subset == 2000
    assert choose_real_set(tiny.data.subset, tiny.data.subset, tiny.evaluate.num_samples).name == "test"


@pytest.mark.parametrize("name", available())
def test_every_profile_applies_to_the_committed_params(name):
    """A profile that names a key params.yaml lacks, or a bad value, would fail `dvc exp run` late."""
    raw = load_params(REPO_ROOT / "params.yaml").model_dump()
    overrides = load_profile(name)
    profiled = parse_params(apply_overrides(raw, overrides)).model_dump()
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        assert profiled[section][key] == value


def test_a_stage_fails_fast_on_a_bad_params_file(tmp_path, venv_env):
    """The first stage exits 2 with one clear message, no traceback, nothing written."""
    (tmp_path / "params.yaml").write_text("train:\n  epoch: 3\n")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "stages" / "download.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=venv_env,
    )
    assert result.returncode == 2
    assert "train.epoch: unknown key. Did you mean 'train.epochs'?" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_the_code_defaults_are_the_committed_params():
    """A key left out of a params file (a test's, a user's) means what params.yaml says."""
    committed = load_params(REPO_ROOT / "params.yaml").model_dump()
    assert parse_params({}).model_dump() == committed


def test_allowed_values_are_the_registries():
    """Each option's allowed values in config.py are exactly the names its registry can build."""
    from typing import get_args

    from fashiongen.config import CONDITIONS, AugmentName, EncoderConfig, ModelConfig
    from fashiongen.gan.augment import AUGMENTS
    from fashiongen.gan.conditions import AUTO, KINDS
    from fashiongen.gan.losses import LOSSES
    from fashiongen.models.encoder import ARCHS as ENCODER_ARCHS
    from fashiongen.models.factory import ARCHS, DISCRIMINATORS, GENERATORS
    from fashiongen.models.layers import NORMS
    from fashiongen.models.layouts import CURRENT

    def allowed(model, field):
        return set(get_args(model.model_fields[field].annotation))

    assert allowed(ModelConfig, "arch") == set(ARCHS) == set(GENERATORS) == set(DISCRIMINATORS) == set(CURRENT)
    assert allowed(ModelConfig, "condition") == set(KINDS) | {AUTO} == set(CONDITIONS) | {AUTO}
    assert allowed(ModelConfig, "loss") == set(LOSSES)
    assert allowed(ModelConfig, "d_norm") == set(NORMS) | {"auto"}
    from fashiongen.models.resnet import BLOCKS

    assert allowed(ModelConfig, "resnet_block") == set(BLOCKS)
    assert allowed(EncoderConfig, "arch") == set(ENCODER_ARCHS)
    assert set(get_args(AugmentName)) == set(AUGMENTS)


def test_a_replaced_key_names_its_replacement():
    with pytest.raises(ConfigError, match=r"train\.ema: moved to train\.ema_kimg"):
        parse_params({"train": {"ema": 0.999}})
