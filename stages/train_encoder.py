"""DVC stage `train_encoder`: the ResNet whose encodings condition the generator; writes models/encoder.pt."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed copy
from fashiongen.stage import run_stage  # noqa: E402


def main(params):
    from fashiongen.pipeline.train_encoder import train_encoder  # imported once params.yaml has been read (start-up)

    train_encoder(params, Path("data/prepared"), Path("models/encoder.pt"), Path("results/encoder/metrics.json"))


if __name__ == "__main__":
    run_stage(main)
