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


def test_a_check_that_cannot_fail_is_named_as_blind():
    """A recall baseline within its tolerance of 0 passes even a recall of 0: the gate says so."""
    tolerances = {**TOLERANCES, "recall": Tolerance("higher", absolute=0.15), "precision": Tolerance("higher", absolute=0.15)}
    near_zero = {**BASE, "recall": 0.004, "precision": 0.9}
    collapsed = compare(near_zero, {**near_zero, "recall": 0.0}, tolerances)
    assert collapsed.passed()  # the blind check still passes: the note is the warning
    table = to_markdown(collapsed)
    assert "Note: recall cannot fail this gate: its baseline 0.004 is within its tolerance 0.15 of the worst value" in table
    assert "precision cannot fail" not in table  # 0.9 - 0.15 is reachable
    # a metric without a bound (FID) or far from it is never blind; IS is bounded below by 1
    assert not any("cannot fail" in note for note in compare(BASE, BASE, tolerances).notes)
    low_is = compare({**BASE, "is_mean": 1.1}, {**BASE, "is_mean": 1.0}, tolerances)
    assert [note.split(" ")[0] for note in low_is.notes if "cannot fail" in note] == ["is_mean"]


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


def gate(tmp_path, capsys, baseline, current, tolerances=None):
    """Run `fashiongen compare` on these contents; (exit status, stdout, the stderr lines)."""
    paths = []
    for name, content in (("base.json", baseline), ("current.json", current)):
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        paths.append(str(path))
    argv = ["compare", *paths]
    if tolerances is not None:
        (tmp_path / "tol.yaml").write_text(tolerances)
        argv += ["--tolerances", str(tmp_path / "tol.yaml")]
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err.splitlines()


def assert_one_error_line(err_lines, *fragments):
    assert len(err_lines) == 1 and err_lines[0].startswith("error: "), err_lines
    for fragment in fragments:
        assert fragment in err_lines[0], (fragment, err_lines[0])


@pytest.mark.parametrize("bad, shown", [
    ("NaN", "nan (float)"), ("Infinity", "inf (float)"), ("-Infinity", "-inf (float)"),
    ("null", "null (NoneType)"), ('"20.0"', '"20.0" (str)'), ("true", "true (bool)"),
])
def test_a_non_finite_or_non_numeric_baseline_fails_the_gate_in_one_line(tmp_path, capsys, bad, shown):
    baseline = json.dumps({**BASE, "fid": 0.0}).replace('"fid": 0.0', f'"fid": {bad}')
    status, out, err = gate(tmp_path, capsys, baseline, {**BASE, "fid": 900.0})
    assert status == 2 and out == ""  # no table, no "ok"
    assert_one_error_line(err, "base.json", "fid is " + shown, "not a finite number", "--update-baseline")


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "null", '"fast"', "false"])
def test_a_non_finite_or_non_numeric_current_metric_fails_the_gate_in_one_line(tmp_path, capsys, bad):
    current = json.dumps({**BASE, "kid_mean": 0.0}).replace('"kid_mean": 0.0', f'"kid_mean": {bad}')
    status, out, err = gate(tmp_path, capsys, BASE, current)
    assert status == 2 and out == ""
    assert_one_error_line(err, "current.json", "kid_mean is", "not a finite number")


def test_ungated_numbers_may_be_anything_and_the_library_call_never_passes_a_nan_baseline(tmp_path, capsys):
    status, out, _ = gate(tmp_path, capsys, {**BASE, "fid_floor": None}, {**BASE, "fid_floor": "n/a", "note": True},
                          "fid:\n  relative: 0.1\n")
    assert status == 0 and "PASS" in out
    result = compare({**BASE, "fid": float("nan")}, {**BASE, "fid": 900.0}, TOLERANCES)
    assert not result.passed() and {row.metric: row.verdict for row in result.rows}["fid"] == "invalid"


def test_a_baseline_without_any_gated_metric_is_refused(tmp_path, capsys):
    status, out, err = gate(tmp_path, capsys, {"num_samples": 1000}, BASE)
    assert status == 2 and out == ""
    assert_one_error_line(err, "base.json holds none of the gated metrics")


@pytest.mark.parametrize("text, fragments", [
    ("fid:\n  relative: 5%\n", ["fid.relative must be a finite number >= 0", "0.05 for 5%", "got '5%'"]),
    ("fid:\n  relative: -0.1\n", ["fid.relative must be a finite number >= 0", "got -0.1"]),
    ("fid:\n  absolute: '0.1'\n", ["fid.absolute must be a finite number >= 0", "got '0.1'"]),
    ("fid:\n  absolute: .nan\n", ["fid.absolute must be a finite number >= 0", "got nan"]),
    ("fid:\n  absolute: yes\n", ["fid.absolute must be a finite number >= 0"]),
    ("fid:\n  better: smaller\n", ["fid.better must be 'lower' or 'higher', got 'smaller'"]),
    ("fid:\n  relativ: 0.1\n", ["fid.relativ is an unknown key (allowed: better, absolute, relative)"]),
    ("fid: 0.1\n", ["fid must be a mapping with keys better, absolute, relative, got 0.1"]),
    ("sharpness:\n  absolute: 1\n", ["sharpness.better must be 'lower' or 'higher'"]),
    ("1:\n  absolute: 1\n", ["metric name '1' must be a string"]),
    ("", ["must be a mapping {metric:", "naming at least one metric"]),
    ("- fid\n", ["must be a mapping {metric:"]),
])
def test_a_bad_tolerance_file_is_one_line_naming_file_key_and_what_is_allowed(tmp_path, capsys, text, fragments):
    status, out, err = gate(tmp_path, capsys, BASE, BASE, text)
    assert status == 2 and out == ""
    assert_one_error_line(err, "tol.yaml", *fragments)


def test_an_unreadable_tolerance_or_metrics_file_is_one_line(tmp_path, capsys):
    (tmp_path / "tol.yaml").mkdir()
    base = tmp_path / "b.json"
    base.write_text(json.dumps(BASE))
    assert main(["compare", str(base), str(base), "--tolerances", str(tmp_path / "tol.yaml")]) == 2
    assert_one_error_line(capsys.readouterr().err.splitlines(), "tol.yaml does not exist or is not a file")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["compare", str(base), str(base), "--tolerances", str(binary)]) == 2
    assert_one_error_line(capsys.readouterr().err.splitlines(), "binary.yaml cannot be read as YAML text")
    assert main(["compare", str(tmp_path), str(base)]) == 2
    assert_one_error_line(capsys.readouterr().err.splitlines(), "cannot be read as a metrics file")
    binary.rename(tmp_path / "binary.json")
    assert main(["compare", str(base), str(tmp_path / "binary.json")]) == 2
    assert_one_error_line(capsys.readouterr().err.splitlines(), "binary.json cannot be read as a metrics file")


def test_an_old_baseline_with_irregular_reference_keys_still_compares(tmp_path):
    """Files from before the references' regular names (kid_floor_mean, is_real_mean) read as today's."""
    import json

    from fashiongen.compare import compare, load_metrics, load_tolerances

    ruler = {"features": "evaluator-x", "num_samples": 100}
    old = {**ruler, "fid": 10.0, "kid_mean": 0.5, "kid_floor_mean": 0.01, "is_mean": 5.0, "is_real_mean": 9.0}
    new = {**ruler, "fid": 10.0, "kid_mean": 0.5, "kid_mean_floor": 0.02, "is_mean": 5.0, "is_mean_floor": 9.5}
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    loaded = load_metrics(tmp_path / "old.json")
    assert loaded["kid_mean_floor"] == 0.01 and loaded["is_mean_floor"] == 9.0 and "is_real_mean" not in loaded
    comparison = compare(loaded, load_metrics(tmp_path / "new.json"), load_tolerances(None))
    info = {row.metric: (row.baseline, row.current) for row in comparison.rows if row.verdict == "info"}
    assert info["kid_mean_floor"] == (0.01, 0.02) and info["is_mean_floor"] == (9.0, 9.5)
    assert comparison.passed()


def test_the_metric_table_names_every_reference_regularly():
    from fashiongen.metrics.table import BY_KEY, METRICS, floors

    scores = {"fid": 1.0, "kid_mean": 2.0, "kid_std": 0.1, "is_mean": 3.0, "is_std": 0.2, "precision": 0.4, "recall": 0.5}
    assert floors(scores) == {"fid_floor": 1.0, "kid_mean_floor": 2.0, "is_mean_floor": 3.0,
                              "precision_floor": 0.4, "recall_floor": 0.5}
    assert {m.key for m in METRICS if m.floor is None} == {"class_consistency", "diversity", "mifid",
                                                            "class_share_distance", "intra_fid_mean"}
    assert BY_KEY["copy_rate"].floor == "copy_rate_floor"  # the real test images' own copy rate
