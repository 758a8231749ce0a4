"""DVC stage `encode`: every train and test image's encoding, once; writes data/encodings/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed copy
from fashiongen.stage import run_stage  # noqa: E402


def main(params):
    from fashiongen.pipeline.encode import encode_dataset  # imported once params.yaml has been read (start-up)

    encode_dataset(params, Path("data/prepared"), Path("models/encoder.pt"), Path("data/encodings"))


if __name__ == "__main__":
    run_stage(main)
