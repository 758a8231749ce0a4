"""`fashiongen report`: progress points, and whole pages from small git + DVC repositories (fresh clone, experiments)."""

import pytest


def test_report_picks_start_quarter_half_three_quarters_and_end():
    from fashiongen.report import progress_epochs

    assert progress_epochs(list(range(1, 9))) == [("start", 1), ("quarter", 3), ("half", 5), ("three quarters", 6), ("end", 8)]
    assert progress_epochs([1, 2]) == [("start", 1), ("end", 2)]
    assert progress_epochs([]) == []


def test_report_shows_the_look_inside_a_label_model(tmp_path):
    """Nearest-neighbour grid, class histogram, per-class FID bars, truncation curve and grid, interpolation strips."""
    import base64
    import re

    from fashiongen.analysis.report_view import load_inspection, render_inspection
    from fashiongen.config import EvaluateConfig
    from fashiongen.pipeline.evaluate import EvaluatePaths, evaluate
    from fashiongen.report import _img
    from helpers import make_evaluator, make_generator, make_prepared

    make_prepared(tmp_path / "prepared")
    make_evaluator(tmp_path / "evaluator.pt")
    make_generator(tmp_path / "generator.pt", "label")
    out = tmp_path / "results" / "evaluate"
    cfg = EvaluateConfig(num_samples=100, batch_size=64, kid_subset_size=50, diversity_groups=5, diversity_per_group=3)
    metrics = evaluate(cfg, EvaluatePaths(tmp_path / "prepared", tmp_path / "evaluator.pt", tmp_path / "generator.pt",
                                          out / "metrics.json", out / "samples.png"), "cpu")

    def read(path):
        file = tmp_path / path
        return file.read_bytes() if file.exists() else None

    page = "\n".join(render_inspection(load_inspection(read), metrics, _img))
    alts = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', page)
    assert [alt for alt, _ in alts] == ["nearest training images", "class histogram", "per-class FID", "truncation curve",
                                        "truncation grid", "interpolation strips"]
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for _, data in alts)
    assert f"Copy rate {metrics['copy_rate']:.4f}" in page and "Under-produced classes" in page
    assert 'src="http' not in page


def test_report_of_a_run_without_analyses_has_no_such_section():
    from fashiongen.analysis.report_view import Inspection, render_inspection

    assert render_inspection(Inspection(), {}, lambda png, alt: "") == []


@pytest.fixture(scope="module")
def repos(tmp_path_factory, venv_env):
    """(a repository that ran the fake pipeline and has experiment 'longer', a `git clone` of it)."""
    import os
    import sys

    from helpers import fake_results_repo, run

    root = tmp_path_factory.mktemp("report")
    saved = dict(os.environ)
    os.environ.update(venv_env)  # the fake stage runs `python`
    try:
        original = fake_results_repo(root / "original")
        run([sys.executable, "-m", "dvc", "exp", "run", "--temp", "-q", "-n", "longer", "-S", "train.epochs=4"], original)
        run(["git", "clone", "-q", str(original), str(root / "clone")], root)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return original, root / "clone"


def report(repo, tmp_path, capsys, *args):
    from fashiongen.cli import main

    out = tmp_path / "report.html"
    status = main(["report", "--repo", str(repo), "--out", str(out), *args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, out, captured.err.splitlines()


def test_report_in_a_fresh_clone_shows_what_it_has_and_says_how_to_get_the_rest(repos, tmp_path, capsys):
    _, clone = repos
    assert not (clone / "results/evaluate/samples.png").exists()  # really not pulled
    status, out, err = report(clone, tmp_path, capsys)
    assert status == 0
    page = out.read_text()
    assert "<td>FID</td>" in page and "12" in page  # the git-tracked metrics, by display name
    assert page.count("<img") == 1  # the loss curve; no grids
    assert len(err) == 1 and err[0].startswith("note: the workspace lacks ")
    for fragment in ("results/evaluate/samples.png", "results/train/samples/", "`dvc pull`", "`dvc repro`"):
        assert fragment in err[0] and fragment in page


def test_report_of_the_original_repo_and_of_an_experiment_by_name(repos, tmp_path, capsys):
    original, _ = repos
    status, out, err = report(original, tmp_path, capsys)
    assert status == 0 and err == []
    assert out.read_text().count("<img") == 1 + 2 + 1  # loss curve, grids of epochs 1 and 2, evaluated samples
    status, out, err = report(original, tmp_path, capsys, "--exp", "longer")
    assert status == 0 and err == []
    page = out.read_text()
    assert "<h2>longer</h2>" in page and "<td>14</td>" in page  # fid = 10 + train.epochs of the experiment
    assert page.count("<img") == 1 + 4 + 1  # epochs 1..4 are the start, quarter/half, three quarters and end


def test_unknown_experiment_is_named_and_points_to_dvc_exp_show(repos, tmp_path, capsys):
    original, clone = repos
    # in the clone, 'longer' is unknown too: experiments travel only with `dvc exp push/pull`
    for repo, unknown in ((original, "no-such-exp"), (clone, "longer")):
        (tmp_path / "report.html").write_text("earlier page")
        status, out, err = report(repo, tmp_path, capsys, "--exp", "longer", "--exp", unknown)
        assert status == 2 and len(err) == 1
        assert err[0].startswith(f"error: unknown experiment {unknown!r}")
        assert "`dvc exp show`" in err[0] and f"`dvc exp pull <git remote> {unknown}`" in err[0]
        assert out.read_text() == "earlier page"


def test_nothing_to_report_is_one_error_line_and_keeps_an_earlier_page(tmp_path, capsys):
    from helpers import fake_results_repo

    repo = fake_results_repo(tmp_path / "never-run", run_pipeline=False)
    (tmp_path / "report.html").write_text("earlier page")
    status, out, err = report(repo, tmp_path, capsys)
    assert status == 2 and len(err) == 1
    assert err[0].startswith("error: nothing to report: the workspace lacks results/evaluate/metrics.json (not produced)")
    assert "`dvc repro`" in err[0] and out.read_text() == "earlier page"


def test_not_a_dvc_repository_is_one_error_line(tmp_path, capsys):
    status, _, err = report(tmp_path, tmp_path, capsys)
    assert status == 2 and len(err) == 1 and "is not in a DVC repository" in err[0]
