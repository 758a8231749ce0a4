import os
import sys
from pathlib import Path

import pytest

from helpers import REPO_ROOT


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def venv_env(tmp_path_factory) -> dict:
    """The environment for subprocesses: this interpreter's bin first on PATH (stages run `python`)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def train_workdir(tmp_path, monkeypatch):
    """A folder with prepared blobs (192 train, 128 test) and a small untrained evaluator; the working directory."""
    from helpers import make_training_root

    monkeypatch.chdir(tmp_path)  # dvclive looks for a git/DVC repo from the working directory
    return make_training_root(tmp_path)
