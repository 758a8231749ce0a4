"""User-facing errors.

Everything a user can cause (a bad params key, a corrupt download, a checkpoint
from another config) raises a :class:`FashionGenError`. The stage runner and the
CLI print its message alone, without a traceback, and exit with status 2, so a
user sees one sentence that names the problem and the fix. Any other exception
is a bug in FashionGen and keeps its traceback.
"""

from __future__ import annotations


class FashionGenError(Exception):
    """An error caused by input the user controls; the message says how to fix it."""

    exit_code = 2


class ConfigError(FashionGenError):
    """params.yaml (or a -S override) is missing, unparsable or invalid."""


class DataError(FashionGenError):
    """A dataset file is missing, truncated, corrupt or has the wrong checksum."""


class CheckpointError(FashionGenError):
    """A checkpoint cannot be read or does not match what is asked of it."""


class TrainingDiverged(FashionGenError):
    """A loss became NaN or infinite; training stopped before saving a broken model."""
