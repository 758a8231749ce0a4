"""DVC stage `train`: fit the GAN; writes models/generator.pt and results/train/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed copy
from fashiongen.stage import run_stage  # noqa: E402


def main(params):
    from fashiongen.pipeline.train import TrainPaths, train_gan  # imported once params.yaml has been read (start-up)

    train_gan(
        params,
        TrainPaths(
            prepared=Path("data/prepared"),
            encodings=Path("data/encodings"),
            evaluator=Path("models/evaluator.pt"),
            generator=Path("models/generator.pt"),
            best_generator=Path("models/generator_best.pt"),
            checkpoints=Path("models/checkpoints"),
            results=Path("results/train"),
        ),
    )


if __name__ == "__main__":
    run_stage(main)
