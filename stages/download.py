"""DVC stage `download`: the four Fashion-MNIST IDX files, verified, or a folder's manifest, into data/raw/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed copy
from fashiongen.stage import run_stage  # noqa: E402


def main(params):
    from fashiongen.data.requirements import require_trainable_manifest
    from fashiongen.data.sources import fetch_raw

    # a folder that cannot be trained on and scored is refused here, in seconds, not in `evaluate`
    fetch_raw(params.data, Path("data/raw"), check=lambda manifest: require_trainable_manifest(manifest, params))


if __name__ == "__main__":
    run_stage(main)
