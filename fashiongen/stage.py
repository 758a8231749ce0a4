"""Running a DVC stage: validate params.yaml first, then do the work, then exit cleanly.

Every stage validates the *whole* params.yaml before importing anything
heavy, so a typo anywhere fails the first stage that runs, in about a second.
Every stage process fixes its compute threads and chooses OpenMP's wait
policy from the machine's load (:func:`fashiongen.runtime.stage_compute`), and
publishes nothing if its params or dependencies changed while it ran
(:mod:`fashiongen.stage_inputs`). A
:class:`~fashiongen.errors.FashionGenError` ends the stage with its message
alone (no traceback) and exit status 2.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Callable

from fashiongen.atomic import checked_before_publishing
from fashiongen.config import DEFAULT_PARAMS_PATH, Params, load_params
from fashiongen.errors import FashionGenError
from fashiongen.runtime import keep_freed_memory, stage_compute
from fashiongen.stage_inputs import InputGuard, StageInputs


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
        with stage_compute():  # before torch is imported: OpenMP reads its settings when it loads
            inputs = StageInputs.of(Path(sys.argv[0]).stem, params_file=Path(params_path))
            guard = InputGuard(inputs) if inputs is not None else None  # before params are read: no change unseen
            params = load_params(params_path)
            with checked_before_publishing(guard) if guard is not None else contextlib.nullcontext():
                main(params)
    except FashionGenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
