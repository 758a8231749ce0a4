"""DVC stage `evaluate`: FID, KID, IS, precision/recall and their real-data floor."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed copy
from fashiongen.stage import run_stage  # noqa: E402


def main(params):
    from fashiongen.pipeline.evaluate import EvaluatePaths, evaluate  # imported once params.yaml has been read

    evaluate(
        params.evaluate,
        EvaluatePaths(
            prepared=Path("data/prepared"),
            evaluator=Path("models/evaluator.pt"),
            generator=Path("models/generator.pt"),
            metrics=Path("results/evaluate/metrics.json"),
            samples=Path("results/evaluate/samples.png"),
            encodings=Path("data/encodings"),
            registry=Path("models/dvc.yaml"),
        ),
        device_name=params.train.device,
    )


if __name__ == "__main__":
    run_stage(main)
