"""DVC stage `train_evaluator`: the fixed classifier that measures every experiment."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed copy
from fashiongen.stage import run_stage  # noqa: E402


def main(params):
    from fashiongen.pipeline.train_evaluator import train_evaluator  # imported once params.yaml has been read

    train_evaluator(
        params.evaluator,
        prepared_dir=Path("data/prepared"),
        model_path=Path("models/evaluator.pt"),
        metrics_path=Path("results/evaluator/metrics.json"),
        data_cfg=params.data,
    )


if __name__ == "__main__":
    run_stage(main)
