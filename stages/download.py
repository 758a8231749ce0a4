"""DVC stage `download`: the four Fashion-MNIST IDX files, verified, into data/raw/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed copy
from fashiongen.stage import run_stage  # noqa: E402


def main(params):
    from fashiongen.data.fashion_mnist import fetch_fashion_mnist

    data = params.data
    fetch_fashion_mnist(Path("data/raw"), data.local_dir, data.mirrors, data.download_timeout_s)


if __name__ == "__main__":
    run_stage(main)
