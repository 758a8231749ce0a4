"""FashionGen in a team (issue 20): a DVC remote, shared experiments, a queued sweep, a sweep over machines.

One tiny pipeline run serves every test here. Alice runs the tiny profile once,
commits dvc.lock and pushes: git to a bare repository and the outputs to a
directory DVC remote, both under a temp dir (nothing reaches the network). Bob
clones and pulls (item 1). Alice runs a queued sweep of two experiments that
change only train.* and model.* params, two at a time, and DVC's stage log must
show every shared stage skipped (item 3); she pushes them with `dvc exp push`
and Bob pulls, lists and applies one (item 2). Bob runs his own share of the
sweep and pushes it; Carol, a fresh clone that ran nothing, collects and
compares everybody's experiments (item 5).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from fashiongen.profiles import apply_overrides, load_profile, set_args
from helpers import REPO_ROOT, copy_pipeline, dvc, experiments, run, run_queue

pytestmark = pytest.mark.e2e

SHARED_STAGES = ("download", "preprocess", "train_evaluator", "train_encoder", "encode")
ALL_STAGES = (*SHARED_STAGES, "train", "evaluate")
# Alice's share of the sweep: one train.* and one model.* change (one epoch keeps them short)
ALICE_SWEEP = {"alice-lr": ["-S", "train.lr_g=0.001"], "alice-lsgan": ["-S", "model.loss=lsgan"]}
BOB_SWEEP = {"bob-lr": ["-S", "train.lr_g=0.004"]}
SHORT = ["-S", "train.epochs=1", "-S", "evaluate.num_samples=500"]


@dataclass
class Team:
    origin: Path  # the bare git repository everybody pushes to
    storage: Path  # the DVC remote (a directory)
    alice: Path
    bob: Path
    first_run: str  # stdout of Alice's `dvc repro`
    bob_pull: str  # stdout of Bob's `dvc pull`


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def locked_md5(lock_text: str, stage: str, path: str) -> str:
    """The md5 dvc.lock records for output ``path`` of ``stage``."""
    lock = YAML(typ="safe").load(lock_text)
    return next(out["md5"] for out in lock["stages"][stage]["outs"] if out["path"] == path)


def clone(team_root: Path, origin: Path, name: str) -> Path:
    repo = team_root / name
    run(["git", "clone", "-q", str(origin), str(repo)], team_root)
    run(["git", "config", "user.email", f"{name}@example.com"], repo)
    run(["git", "config", "user.name", name], repo)
    return repo


@pytest.fixture(scope="module")
def team(tmp_path_factory, venv_env) -> Team:
    root = tmp_path_factory.mktemp("team")
    origin, storage = root / "origin.git", root / "dvc-storage"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], root)

    alice = copy_pipeline(root / "alice")
    yaml = YAML()  # round-trip: keeps params.yaml's comments
    params = yaml.load(alice / "params.yaml")
    with open(alice / "params.yaml", "w") as handle:
        yaml.dump(apply_overrides(params, load_profile("tiny")), handle)
    dvc(alice, "remote", "add", "-d", "storage", str(storage), env=venv_env)  # docs/experiments-and-teams.md: `dvc remote add -d ...`
    run(["git", "add", "-A"], alice)
    run(["git", "commit", "-qm", "tiny profile, DVC remote"], alice)
    run(["git", "branch", "-M", "main"], alice)
    run(["git", "remote", "add", "origin", str(origin)], alice)
    first = dvc(alice, "repro", env=venv_env)
    run(["git", "add", "-A"], alice)
    run(["git", "commit", "-qm", "dvc.lock and metrics of the tiny run"], alice)
    dvc(alice, "push", env=venv_env)
    run(["git", "push", "-q", "origin", "main"], alice)

    bob = clone(root, origin, "bob")
    pulled = dvc(bob, "pull", env=venv_env)
    return Team(origin, storage, alice, bob, first.stdout, pulled.stdout)


# --- 1. Remote storage --------------------------------------------------------------------------

def test_a_new_clone_pulls_every_output_and_reruns_nothing(team, venv_env):
    assert all(f"Running stage '{stage}'" in team.first_run for stage in ALL_STAGES)
    for path in ("data/raw", "data/prepared/meta.json", "data/encodings", "models/evaluator.pt",
                 "models/encoder.pt", "models/generator.pt", "models/generator_best.pt"):
        assert (team.bob / path).exists(), path
    assert md5(team.bob / "models/generator.pt") == md5(team.alice / "models/generator.pt")
    assert not (team.bob / "models/checkpoints").exists()  # a resume area, not an output: nothing to pull
    again = dvc(team.bob, "repro", env=venv_env)
    assert "Running stage" not in again.stdout, again.stdout
    assert "Data and pipelines are up to date." in again.stdout
    assert json.loads(dvc(team.bob, "status", "--json", env=venv_env).stdout) == {}


def test_generate_works_in_the_pulled_clone(team, venv_env):
    import numpy as np

    run([sys.executable, "-m", "fashiongen", "generate", "--n", "16", "--out", "s.npz", "--seed", "3"],
        team.bob, env=venv_env)
    images = np.load(team.bob / "s.npz")["images"]
    assert images.shape == (16, 1, 28, 28) and images.dtype == np.uint8 and images.std() > 0
    (team.bob / "s.npz").unlink()


def test_metrics_of_the_clone_equal_those_of_alices_commit(team, venv_env):
    alices_commit = run(["git", "rev-parse", "HEAD"], team.alice).stdout.strip()
    diff = dvc(team.bob, "metrics", "diff", alices_commit, "--json", env=venv_env)
    assert json.loads(diff.stdout or "{}") == {}
    shown = json.loads(dvc(team.bob, "metrics", "show", "--json", env=venv_env).stdout)
    fid = shown[""]["data"]["results/evaluate/metrics.json"]["data"]["fid"]
    assert math.isfinite(fid) and fid > 0


# --- The model registry (issue 40 item 1) -------------------------------------------------------

def test_a_registered_generator_version_is_fetched_by_name_in_another_repository(team, venv_env, tmp_path):
    """Alice registers the committed generator as a version (a GTO tag) and pushes it; another repository
    fetches it by name with `dvc artifacts get` and draws the same images from it."""
    import numpy as np

    entry = YAML(typ="safe").load(team.alice / "models/dvc.yaml")["artifacts"]["generator"]
    metrics = json.loads((team.alice / "results/evaluate/metrics.json").read_text())
    assert entry["path"] == "generator.pt" and entry["type"] == "model"
    meta = entry["meta"]
    assert meta["condition"] == "label" and len(meta["classes"]) == 10 and meta["image_size"] == 28
    assert (meta["fid"], meta["fid_floor"]) == (metrics["fid"], metrics["fid_floor"])
    assert len(meta["params_digest"]) == 16

    gto = str(Path(sys.executable).parent / "gto")
    run([gto, "register", "models:generator", "--version", "v1.0.0"], team.alice, env=venv_env)
    run(["git", "push", "-q", "origin", "models=generator@v1.0.0"], team.alice)
    elsewhere = tmp_path / "another-project"
    elsewhere.mkdir()
    dvc(elsewhere, "artifacts", "get", str(team.origin), "models:generator", "--rev", "v1.0.0",
        "-o", "fetched.pt", env=venv_env)
    assert md5(elsewhere / "fetched.pt") == md5(team.alice / "models/generator.pt")

    draw = [sys.executable, "-m", "fashiongen", "generate", "--n", "16", "--seed", "5", "--out", "drawn.npz"]
    run([*draw, "--checkpoint", "fetched.pt"], elsewhere, env=venv_env)
    run([*draw, "--checkpoint", "models/generator.pt"], team.alice, env=venv_env)
    fetched, original = (np.load(root / "drawn.npz")["images"] for root in (elsewhere, team.alice))
    (team.alice / "drawn.npz").unlink()
    assert fetched.shape == (16, 1, 28, 28) and np.array_equal(fetched, original)


# --- 3. A queued sweep redoes nothing shared ----------------------------------------------------

@pytest.fixture(scope="module")
def alice_sweep(team, venv_env) -> dict[str, str]:
    """Alice queues her share of the sweep and runs it two at a time; each experiment's stage log by name."""
    for name, overrides in ALICE_SWEEP.items():
        dvc(team.alice, "exp", "run", "--queue", "-n", name, *overrides, *SHORT, env=venv_env)
    run_queue(team.alice, jobs=2, env=venv_env)
    return {name: dvc(team.alice, "queue", "logs", name, env=venv_env).stdout for name in ALICE_SWEEP}


def test_a_queued_sweep_of_train_and_model_params_skips_every_shared_stage(alice_sweep):
    for name, log in alice_sweep.items():
        for stage in SHARED_STAGES:
            assert f"Stage '{stage}' didn't change, skipping" in log, (name, stage, log)
            assert f"Running stage '{stage}'" not in log, (name, stage)
        assert "Running stage 'train'" in log and "Running stage 'evaluate'" in log, (name, log)
        assert "resuming from" not in log  # each experiment trains its own model from scratch


def test_both_queued_experiments_are_listed_with_their_own_metrics(team, alice_sweep, venv_env):
    shown = experiments(json.loads(dvc(team.alice, "exp", "show", "--json", env=venv_env).stdout))
    assert set(ALICE_SWEEP) <= set(shown)
    fids = [shown[name]["metrics"]["results/evaluate/metrics.json"]["data"]["fid"] for name in ALICE_SWEEP]
    assert all(math.isfinite(f) for f in fids) and fids[0] != fids[1]
    assert shown["alice-lsgan"]["params"]["params.yaml"]["data"]["model"]["loss"] == "lsgan"


# --- 2. Shared experiments ----------------------------------------------------------------------

def test_bob_lists_alices_experiments_applies_one_and_pulls_its_generator(team, alice_sweep, venv_env):
    dvc(team.alice, "exp", "push", "origin", *ALICE_SWEEP, env=venv_env)  # git refs + outputs to the DVC remote
    assert set(ALICE_SWEEP) <= set(dvc(team.bob, "exp", "list", "origin", "--name-only", env=venv_env).stdout.split())
    dvc(team.bob, "exp", "pull", "origin", *ALICE_SWEEP, env=venv_env)
    shown = experiments(json.loads(dvc(team.bob, "exp", "show", "--json", env=venv_env).stdout))
    assert set(ALICE_SWEEP) <= set(shown)
    alice_fid = json.loads(dvc(team.alice, "exp", "show", "--json", env=venv_env).stdout)
    alice_fid = experiments(alice_fid)["alice-lr"]["metrics"]["results/evaluate/metrics.json"]["data"]["fid"]
    assert shown["alice-lr"]["metrics"]["results/evaluate/metrics.json"]["data"]["fid"] == alice_fid

    main_generator = md5(team.bob / "models/generator.pt")
    try:
        dvc(team.bob, "exp", "apply", "alice-lr", env=venv_env)
        dvc(team.bob, "pull", env=venv_env)
        expected = locked_md5((team.bob / "dvc.lock").read_text(), "train", "models/generator.pt")
        assert md5(team.bob / "models/generator.pt") == expected != main_generator
        assert "Running stage" not in dvc(team.bob, "repro", env=venv_env).stdout  # everything came from the remote
    finally:  # back to main's workspace for the tests after this one
        run(["git", "reset", "-q", "--hard"], team.bob)
        dvc(team.bob, "checkout", "--force", env=venv_env)
    assert md5(team.bob / "models/generator.pt") == main_generator


# --- 5. A sweep over several machines -----------------------------------------------------------

def test_a_sweep_split_over_two_machines_is_collected_in_a_third_clone(team, alice_sweep, venv_env):
    # Bob, the second worker, runs his share from the same commit and pushes it
    for name, overrides in BOB_SWEEP.items():
        dvc(team.bob, "exp", "run", "--queue", "-n", name, *overrides, *SHORT, env=venv_env)
    run_queue(team.bob, jobs=1, env=venv_env)
    bob_log = dvc(team.bob, "queue", "logs", "bob-lr", env=venv_env).stdout
    assert all(f"Stage '{stage}' didn't change, skipping" in bob_log for stage in SHARED_STAGES), bob_log
    dvc(team.bob, "exp", "push", "origin", env=venv_env)  # every experiment of this commit
    dvc(team.alice, "exp", "push", "origin", env=venv_env)  # again: pushing what is there already is a no-op

    # Carol ran nothing: she collects every worker's experiments and compares them
    carol = clone(team.alice.parent, team.origin, "carol")
    everyone = {*ALICE_SWEEP, *BOB_SWEEP}
    assert everyone <= set(dvc(carol, "exp", "list", "origin", "--name-only", env=venv_env).stdout.split())
    dvc(carol, "exp", "pull", "origin", env=venv_env)
    shown = experiments(json.loads(dvc(carol, "exp", "show", "--json", env=venv_env).stdout))
    assert everyone <= set(shown)
    fid = {name: shown[name]["metrics"]["results/evaluate/metrics.json"]["data"]["fid"] for name in everyone}
    assert all(math.isfinite(value) for value in fid.values()) and len(set(fid.values())) == len(everyone)
    diff = json.loads(dvc(carol, "exp", "diff", "alice-lr", "bob-lr", "--json", env=venv_env).stdout)
    lr = diff["params"]["params.yaml"]["train.lr_g"]
    assert (lr["old"], lr["new"]) == (0.001, 0.004)
    assert "fid" in diff["metrics"]["results/evaluate/metrics.json"]

    best = min(fid, key=fid.get)  # the collector takes the winner's generator without training
    dvc(carol, "exp", "apply", best, env=venv_env)
    dvc(carol, "pull", env=venv_env)
    expected = locked_md5((carol / "dvc.lock").read_text(), "train", "models/generator.pt")
    assert md5(carol / "models/generator.pt") == expected
    assert not (carol / "models/checkpoints").exists()


# --- 6. CI keeps its DVC cache ------------------------------------------------------------------

def test_the_gate_with_its_restored_cache_and_state_reruns_only_what_changed(team, venv_env, tmp_path):
    """What .github/workflows/ci.yml's actions/cache gives the gate, on a fresh checkout.

    As in CI, the commit holds params.yaml's defaults and the gate applies a
    profile with -S; the last gate run's state (.ci/gate-state) and .dvc/cache
    are restored. A change of an evaluate param then reruns evaluate alone.
    """
    import shutil

    state = tmp_path / "gate-state"
    run(["bash", str(REPO_ROOT / ".ci" / "gate-state"), "save", str(state)], team.alice, env=venv_env)  # last run
    ci = clone(team.alice.parent, team.origin, "ci")
    shutil.copy2(REPO_ROOT / "params.yaml", ci / "params.yaml")  # a commit with the defaults, like main
    run(["git", "commit", "-qam", "defaults"], ci)
    shutil.copytree(team.alice / ".dvc" / "cache", ci / ".dvc" / "cache")  # actions/cache's restore
    restored = run(["bash", str(REPO_ROOT / ".ci" / "gate-state"), "restore", str(state)], ci, env=venv_env)
    assert "gate-state" not in restored.stdout, restored.stdout  # nothing missing
    profile = set_args({**load_profile("tiny"), "evaluate.num_samples": 400})
    ran = dvc(ci, "exp", "run", "-n", "ci-gate", *profile, env=venv_env)
    assert [line for line in ran.stdout.splitlines() if line.startswith("Running stage")] == [
        "Running stage 'evaluate':"
    ], ran.stdout
    assert json.loads((ci / "results/evaluate/metrics.json").read_text())["num_samples"] == 400


def test_the_gate_without_a_saved_state_says_so_and_changes_nothing(tmp_path, venv_env):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "dvc.lock").write_text("schema: '2.0'\n")
    restored = run(["bash", str(REPO_ROOT / ".ci" / "gate-state"), "restore", str(tmp_path / "none")], repo)
    assert "no saved state" in restored.stdout and (repo / "dvc.lock").read_text() == "schema: '2.0'\n"
