"""DVC stage `preprocess`: raw files -> uint8 arrays + meta.json in data/prepared/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed copy
from fashiongen.stage import run_stage  # noqa: E402


def main(params):
    from fashiongen.pipeline.preprocess import preprocess  # imported once params.yaml has been read (start-up)

    preprocess(params, Path("data/raw"), Path("data/prepared"))


if __name__ == "__main__":
    run_stage(main)
