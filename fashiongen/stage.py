"""Running a DVC stage: validate params.yaml first, then do the work, then exit cleanly.

Every stage validates the *whole* params.yaml before importing anything
heavy, so a typo anywhere fails the first stage that runs, in about a second.
Every stage process sizes its compute threads to its share of the machine's
cores (:func:`fashiongen.runtime.share_cores`). A
:class:`~fashiongen.errors.FashionGenError` ends the stage with its message
alone (no traceback) and exit status 2.
"""

from __future__ import annotations

import logging
import sys
from typing import Callable

from fashiongen.config import DEFAULT_PARAMS_PATH, Params, load_params
from fashiongen.errors import FashionGenError
from fashiongen.runtime import keep_freed_memory, share_cores


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    for noisy in ("dvclive", "dvc", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_stage(main: Callable[[Params], object], params_path=DEFAULT_PARAMS_PATH) -> None:
    """Load and validate params, call ``main(params)``, turn user errors into one line."""
    configure_logging()
    keep_freed_memory()
    try:
        with share_cores():  # before torch is imported: its thread pools start at this process's share
            params = load_params(params_path)
            main(params)
    except FashionGenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
