"""DVC stage `preprocess`: raw files -> uint8 arrays + meta.json in data/prepared/."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed copy
from fashiongen.stage import run_stage  # noqa: E402


def main(params):
    from fashiongen.data.requirements import require_trainable_prepared, require_trainable_raw
    from fashiongen.data.sources import prepare

    require_trainable_raw(Path("data/raw"), params)  # under this stage's params, before anything is written
    # the images that decoded, checked before they replace data/prepared
    prepare(params.data, Path("data/raw"), Path("data/prepared"), check=lambda staged: require_trainable_prepared(staged, params))


if __name__ == "__main__":
    run_stage(main)
