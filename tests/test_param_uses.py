"""Every param that config.PARAM_USES calls unused really changes nothing (issue 37 item 4).

A wrong entry would let a change that does matter publish a stale run again, so
each entry is checked by training: for each entry, a small run where the param
is unused according to the table, and the same run with the param changed, end
on the same weights bit for bit. One baseline per kind of run is shared.
"""

from __future__ import annotations

import pytest

from fashiongen.config import PARAM_USES, ConfigError, parse_params, unused_params
from helpers import assert_same_weights, generator_weights, make_training_root, tiny_train_params, train_in

# the runs where the params are unused: changes of model.* and train.* beyond tiny_train_params'
BASES = {
    "label": ({}, {}),  # a label model, dcgan, rpgan with R1/R2, cosine schedule, EMA and in-training FID
    "none": ({"condition": "none"}, {}),
    "no-penalty": ({"r1_gamma": 0.0}, {}),
    "constant": ({}, {"schedule": "constant"}),
    "no-ema": ({}, {"ema_kimg": 0.0}),
    "no-fid": ({}, {"eval_every": 0}),
    "resnet-depthwise": ({"arch": "resnet", "g_width": 16, "d_width": 16}, {}),
}
# each entry of PARAM_USES: (the base where it is unused, another value); stage_widths cannot differ outside
# resnet (params.yaml is refused) and is the resnet's own shape within it: checked by the refusal below
CHANGES = {
    "model.clusters": ("label", 7),
    "model.embed_dim": ("none", 5),
    "model.g_cond": ("none", "input"),
    "model.gp_weight": ("label", 3.0),
    "model.reg_every": ("no-penalty", 3),
    "model.resnet_block": ("label", "basic"),
    "model.resnet_blocks": ("label", 2),
    "model.resnet_group_width": ("resnet-depthwise", 8),
    "train.lr_end_ratio": ("constant", 0.5),
    "train.gamma_end_ratio": ("no-penalty", 0.5),
    "train.reg_chunk": ("no-penalty", 8),
    "train.ema_rampup": ("no-ema", 0.5),
    "train.eval_samples": ("no-fid", 150),
}


def base_params(base: str, change: tuple[str, object] | None = None):
    model, train = BASES[base]
    raw = tiny_train_params().model_dump()
    raw["model"]["condition"] = "label"  # what auto trains on the labelled blobs, named: the table needs it resolved
    raw["model"].update(model)
    raw["train"].update({"epochs": 1, **train})
    if change is not None:
        section, key = change[0].split(".")
        raw[section][key] = change[1]
    return parse_params(raw)


def test_every_entry_of_the_table_is_checked_here():
    assert set(CHANGES) | {"model.stage_widths"} == {use.name for use in PARAM_USES}


def test_stage_widths_cannot_change_where_they_are_unused():
    assert "model.stage_widths" in unused_params(base_params("label"))
    with pytest.raises(ConfigError, match="model.stage_widths is for model.arch resnet"):
        base_params("label", ("model.stage_widths", [8, 16]))


@pytest.fixture(scope="module")
def baselines(tmp_path_factory):
    """The weights of each base run, trained once (lazily: only the bases a selected test needs)."""
    root = make_training_root(tmp_path_factory.mktemp("param_uses"))
    trained: dict[str, dict] = {}

    def weights(base: str, change=None, name: str | None = None):
        if change is None and base in trained:
            return trained[base]
        run, _ = train_in(root, base_params(base, change), name or base)
        result = generator_weights(run.generator)
        if change is None:
            trained[base] = result
        return result

    return weights


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_a_param_the_table_calls_unused_changes_no_weight(baselines, name):
    base, value = CHANGES[name]
    assert name in unused_params(base_params(base)), f"{name} is used in the base {base!r}: pick another"
    changed = base_params(base, (name, value))
    assert name in unused_params(changed)
    assert_same_weights(baselines(base), baselines(base, (name, value), name=f"{base}-{name}"))


def test_the_check_sees_a_param_that_is_used(baselines):
    """The same comparison fails for a used param (the cosine schedule's end ratio): it can fail."""
    assert "train.lr_end_ratio" not in unused_params(base_params("label"))
    with pytest.raises(AssertionError):
        assert_same_weights(baselines("label"), baselines("label", ("train.lr_end_ratio", 0.5), name="label-used"))
