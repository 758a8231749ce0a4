"""DVC stage `download`: the four Fashion-MNIST IDX files, verified, or a folder's manifest, into data/raw/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed copy
from fashiongen.stage import run_stage  # noqa: E402


def main(params):
    from fashiongen.pipeline.download import download  # imported once params.yaml has been read (start-up)

    download(params, Path("data/raw"))


if __name__ == "__main__":
    run_stage(main)
