"""The record is what the run used (issue 37 item 1): a stage whose inputs change while it runs publishes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fashiongen.stage_inputs import InputGuard, InputsChanged, Snapshot, StageInputs
from helpers import REPO_ROOT, dvc, run

DVC_YAML = """
stages:
  train:
    cmd: python train.py
    deps:
      - prepared
      - evaluator.pt
      - train.py
      - ${data.folder}
    params:
      - train
      - model.z_dim
    outs:
      - run/generator.pt:
          persist: true
"""
PARAMS = """\
data: {folder: photos}
model: {g_width: 8, d_width: 8, z_dim: 16}
train: {epochs: 60, batch_size: 32, log_every: 2, eval_every: 0, device: cpu, lr_g: 0.0015}
"""
# The train stage on the blobs of helpers.make_prepared, run by the stage runner: the script's name is the stage's.
TRAIN_SCRIPT = textwrap.dedent("""
    from pathlib import Path
    from fashiongen.stage import run_stage

    def main(params):
        from fashiongen.pipeline.train import TrainPaths, train_gan
        run = Path("run")
        train_gan(params, TrainPaths(prepared=Path("prepared"), encodings=Path("encodings"), evaluator=Path("evaluator.pt"),
                                     generator=run / "generator.pt", best_generator=run / "generator_best.pt",
                                     checkpoints=run / "checkpoints", results=run / "results"))

    run_stage(main)
""")


@pytest.fixture
def stage_repo(train_workdir, venv_env):
    (train_workdir / "dvc.yaml").write_text(DVC_YAML)
    (train_workdir / "params.yaml").write_text(PARAMS)
    (train_workdir / "train.py").write_text(TRAIN_SCRIPT)
    (train_workdir / "photos").mkdir()
    (train_workdir / "photos" / "a.txt").write_text("a")
    env = {**venv_env, "PYTHONPATH": str(REPO_ROOT)}
    return train_workdir, env


def wait_for(path: Path, process: subprocess.Popen, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_dvc_yaml_gives_the_stages_params_and_deps_with_interpolation(stage_repo, monkeypatch):
    root, _ = stage_repo
    monkeypatch.chdir(root)
    inputs = StageInputs.of("train")
    assert inputs.keys == ("train", "model.z_dim")
    assert inputs.deps == ("prepared", "evaluator.pt", "train.py", "photos")
    assert StageInputs.of("evaluate") is None and StageInputs.of("train", dvc_yaml=root / "nope.yaml") is None


def test_a_change_is_named_leaf_by_leaf_and_files_and_folders_are_watched(stage_repo, monkeypatch):
    root, _ = stage_repo
    monkeypatch.chdir(root)
    guard = InputGuard(StageInputs.of("train"))
    guard()  # nothing changed
    (root / "params.yaml").write_text(PARAMS.replace("lr_g: 0.0015", "lr_g: 0.001").replace("z_dim: 16", "z_dim: 8"))
    (root / "photos" / "b.txt").write_text("b")
    with pytest.raises(InputsChanged) as raised:
        guard()
    message = str(raised.value)
    assert "the inputs of stage 'train' changed while it ran (train.lr_g: 0.0015 -> 0.001; model.z_dim: 16 -> 8; " \
           "photos changed)" in message
    assert "nothing was published and the previous outputs stay" in message and "`dvc repro` again" in message
    assert Snapshot({"train": {"a": 1}}, {}).changes(Snapshot({"train": {"a": 1, "b": 2}}, {})) == ["train.b: '(absent)' -> 2"]


def test_params_edited_while_a_stage_runs_fail_it_and_change_no_output(stage_repo):
    root, env = stage_repo
    (root / "params.yaml").write_text(PARAMS.replace("epochs: 60", "epochs: 2"))  # a short run publishes first
    first = subprocess.run([sys.executable, "train.py"], cwd=root, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    published = (root / "run" / "generator.pt").read_bytes()

    (root / "params.yaml").write_text(PARAMS)  # a longer run, and an edit while it runs
    second = subprocess.Popen([sys.executable, "train.py"], cwd=root, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    wait_for(root / "run" / "checkpoints" / "epoch_0003.pt", second)  # past the short run's own checkpoints
    (root / "params.yaml").write_text(PARAMS.replace("lr_g: 0.0015", "lr_g: 0.001"))
    _, stderr = second.communicate(timeout=300)
    assert second.returncode == 2, stderr
    assert "error: the inputs of stage 'train' changed while it ran (train.lr_g: 0.0015 -> 0.001)" in stderr
    assert "Traceback" not in stderr
    assert (root / "run" / "generator.pt").read_bytes() == published  # the previous output stays


def test_a_second_dvc_exp_run_during_a_repro_leaves_no_record_of_params_the_run_did_not_use(stage_repo):
    root, env = stage_repo
    for command in (["git", "init", "-q"], ["git", "config", "user.email", "ci@example.com"],
                    ["git", "config", "user.name", "FashionGen CI"]):
        run(command, root)
    dvc(root, "init", "-q", env=env)
    (root / ".gitignore").write_text("run/checkpoints\n")
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "pipeline"], root)
    repro = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=root, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    wait_for(root / "run" / "checkpoints" / "epoch_0001.pt", repro)
    second = dvc(root, "exp", "run", "-S", "train.lr_g=0.001", env=env, check=False)
    assert second.returncode != 0  # DVC's lock refuses it ...
    if "lr_g: 0.001" not in (root / "params.yaml").read_text():  # ... after writing params.yaml (DVC 3), or not
        (root / "params.yaml").write_text(PARAMS.replace("lr_g: 0.0015", "lr_g: 0.001"))  # an edit by hand, then
    output, _ = repro.communicate(timeout=300)
    assert repro.returncode != 0, output
    assert "the inputs of stage 'train' changed while it ran (train.lr_g: 0.0015 -> 0.001)" in output
    assert not (root / "run" / "generator.pt").exists()
    assert not (root / "dvc.lock").exists() or "0.001" not in (root / "dvc.lock").read_text()
    status = json.loads(dvc(root, "status", "--json", env=env).stdout)
    assert "train" in status  # not "up to date"


def test_what_dvc_ignores_is_not_a_change(stage_repo, monkeypatch):
    """Python writes __pycache__ into a code folder while the stage imports it; DVC does not hash it (.dvcignore)."""
    root, _ = stage_repo
    monkeypatch.chdir(root)
    (root / ".dvcignore").write_text("# what DVC skips\n__pycache__/\n*.pyc\n")
    (root / "dvc.yaml").write_text(DVC_YAML.replace("- train.py", "- code"))
    (root / "code").mkdir()
    (root / "code" / "a.py").write_text("x = 1\n")
    guard = InputGuard(StageInputs.of("train"))
    (root / "code" / "__pycache__").mkdir()
    (root / "code" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"compiled")
    (root / "code" / "b.pyc").write_bytes(b"compiled")
    guard()
    (root / "code" / "a.py").write_text("x = 2\n")
    with pytest.raises(InputsChanged, match=r"\(code changed\)"):
        guard()
