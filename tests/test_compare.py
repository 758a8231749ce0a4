"""`fashiongen compare`: the CI metric gate."""

import json

import pytest

from fashiongen.cli import main
from fashiongen.compare import Tolerance, compare, load_tolerances, to_markdown

BASE = {"fid": 20.0, "kid_mean": 0.50, "is_mean": 6.0, "precision": 0.6, "recall": 0.5, "fid_floor": 1.0,
        "num_samples": 1000, "features": "evaluator-aaa", "features_recipe": "recipe-1"}
TOLERANCES = {"fid": Tolerance("lower", relative=0.10), "is_mean": Tolerance("higher", absolute=0.2),
              "kid_mean": Tolerance("lower", absolute=0.1)}


def test_within_tolerance_passes_and_lists_everything():
    current = {**BASE, "fid": 21.5, "is_mean": 5.9}
    result = compare(BASE, current, TOLERANCES)
    assert result.passed()
    table = to_markdown(result)
    assert "| fid | 20 | 21.5 | +1.5 (+7.5%) | ok |" in table
    assert "| fid_floor | 1 | 1 | +0 (+0.0%) | info |" in table
    assert "PASS" in table


def test_worse_beyond_tolerance_fails_and_names_the_metric():
    result = compare(BASE, {**BASE, "fid": 30.0, "is_mean": 7.0}, TOLERANCES)
    assert not result.passed()
    assert [row.metric for row in result.regressions] == ["fid"]
    assert {row.metric: row.verdict for row in result.rows}["is_mean"] == "better"
    assert "FAIL: fid moved the wrong way" in to_markdown(result)


def test_higher_is_better_metrics_fail_when_they_drop():
    result = compare(BASE, {**BASE, "is_mean": 5.0}, TOLERANCES)
    assert [row.metric for row in result.regressions] == ["is_mean"]


def test_missing_or_nan_gated_metric_fails():
    current = dict(BASE)
    del current["kid_mean"]
    assert [row.metric for row in compare(BASE, current, TOLERANCES).regressions] == ["kid_mean"]
    assert not compare(BASE, {**BASE, "fid": float("nan")}, TOLERANCES).passed()


def test_rulers_must_match_unless_only_the_machine_differs():
    other_machine = {**BASE, "features": "evaluator-bbb"}  # same recipe, other weights
    result = compare(BASE, other_machine, TOLERANCES)
    assert result.passed() and "same recipe" in to_markdown(result)
    other_ruler = {**BASE, "features": "evaluator-ccc", "features_recipe": "recipe-2"}
    assert not compare(BASE, other_ruler, TOLERANCES).passed()
    assert compare(BASE, other_ruler, TOLERANCES).passed(allow_ruler_change=True)
    assert not compare(BASE, {**BASE, "num_samples": 500}, TOLERANCES).passed()


def test_cli_exit_codes_and_tolerance_file(tmp_path, capsys):
    baseline, good, bad = tmp_path / "base.json", tmp_path / "good.json", tmp_path / "bad.json"
    baseline.write_text(json.dumps(BASE))
    good.write_text(json.dumps({**BASE, "fid": 20.5}))
    bad.write_text(json.dumps({**BASE, "fid": 40.0}))
    tolerances = tmp_path / "tolerances.yaml"
    tolerances.write_text("fid:\n  better: lower\n  relative: 0.05\n")
    assert main(["compare", str(baseline), str(good), "--tolerances", str(tolerances)]) == 0
    assert main(["compare", str(baseline), str(bad), "--tolerances", str(tolerances)]) == 1
    out = capsys.readouterr().out
    assert "| fid | 20 | 40 | +20 (+100.0%) | WORSE |" in out
    assert main(["compare", str(baseline), str(tmp_path / "nope.json")]) == 2
    assert "nope.json does not exist" in capsys.readouterr().err


def test_bad_tolerance_file_is_a_clear_error(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("fid:\n  better: smaller\n")
    with pytest.raises(Exception, match="fid.better must be 'lower' or 'higher'"):
        load_tolerances(path)



def test_numbers_measured_against_different_real_sets_are_refused():
    test_set = {**BASE, "real_set": "test", "real_count": 1000}
    full_set = {**BASE, "real_set": "full", "real_count": 600}
    result = compare(test_set, full_set, TOLERANCES)
    assert not result.passed() and result.passed(allow_ruler_change=True)
    assert "FAIL: measured against different real sets (test set of 1000 images vs full set of 600)" in to_markdown(result)
    # the full set of a folder that grew is another real set too
    assert not compare(full_set, {**full_set, "real_count": 700}, TOLERANCES).passed()
    assert compare(full_set, dict(full_set), TOLERANCES).passed()


def test_a_metrics_file_from_before_the_real_set_was_recorded_counts_as_the_test_set():
    assert compare(BASE, {**BASE, "real_set": "test", "real_count": 1000}, TOLERANCES).passed()
    assert not compare(BASE, {**BASE, "real_set": "full", "real_count": 1000}, TOLERANCES).passed()
    # an N change is reported once, as an N change
    assert compare(BASE, {**BASE, "num_samples": 500}, TOLERANCES).ruler_problems == [
        "num_samples differs (1000 vs 500): FID and KID depend on N"
    ]
