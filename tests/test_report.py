"""`fashiongen report` pieces (the rendering itself is tested end to end in test_pipeline.py)."""


def test_report_picks_start_quarter_half_three_quarters_and_end():
    from fashiongen.report import progress_epochs

    assert progress_epochs(list(range(1, 9))) == [("start", 1), ("quarter", 3), ("half", 5), ("three quarters", 6), ("end", 8)]
    assert progress_epochs([1, 2]) == [("start", 1), ("end", 2)]
    assert progress_epochs([]) == []
