"""`fashiongen report` pieces (the rendering itself is tested end to end in test_pipeline.py)."""


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
    from fashiongen.evaluation import EvaluatePaths, evaluate
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
