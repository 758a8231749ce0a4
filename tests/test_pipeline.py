"""End to end: the real DVC pipeline on the tiny profile, from a fresh repository.

Runs `dvc repro` in a copy of this checkout's pipeline (real Fashion-MNIST from
data.local_dir, a 2000-image subset, one short training run), then checks that
every stage ran, that the metrics are finite and in range, that DVC sees them,
and that a second `dvc repro` reruns nothing.
"""

import json
import math
import sys

import numpy as np
import pytest
from ruamel.yaml import YAML

from fashiongen.profiles import apply_overrides, load_profile
from helpers import copy_pipeline, run

pytestmark = pytest.mark.e2e
STAGES = ("download", "preprocess", "train_evaluator", "train_encoder", "encode", "train", "evaluate")


def dvc(repo, *args, env):
    return run([sys.executable, "-m", "dvc", *args], repo, env=env)


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory, venv_env):
    repo = copy_pipeline(tmp_path_factory.mktemp("pipeline"))
    yaml = YAML()  # round-trip: keeps params.yaml's comments
    params = yaml.load(repo / "params.yaml")
    tiny = apply_overrides(params, load_profile("tiny"))
    with open(repo / "params.yaml", "w") as handle:
        yaml.dump(tiny, handle)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny profile"], repo)
    first = dvc(repo, "repro", env=venv_env)
    return repo, first


def test_every_stage_ran_and_was_locked(tiny_repo):
    repo, first = tiny_repo
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first.stdout
    lock = YAML(typ="safe").load(repo / "dvc.lock")
    assert set(lock["stages"]) == set(STAGES)
    for path in ("data/raw/train-images-idx3-ubyte", "data/prepared/meta.json", "models/evaluator.pt",
                 "models/generator.pt", "results/evaluate/samples.png", "results/train/samples/epoch_0002.png"):
        assert (repo / path).is_file(), path


def test_prepared_data_is_the_balanced_subset(tiny_repo):
    repo, _ = tiny_repo
    meta = json.loads((repo / "data/prepared/meta.json").read_text())
    assert meta["counts"] == {"train": 2000, "test": 2000}
    labels = np.load(repo / "data/prepared/train_labels.npy")
    assert np.bincount(labels).tolist() == [200] * 10


def test_metrics_are_finite_and_in_range(tiny_repo):
    repo, _ = tiny_repo
    metrics = json.loads((repo / "results/evaluate/metrics.json").read_text())
    evaluator = json.loads((repo / "results/evaluator/metrics.json").read_text())
    numbers = {k: v for k, v in metrics.items() if isinstance(v, float)}
    assert all(math.isfinite(v) for v in numbers.values()), numbers
    assert metrics["num_samples"] == 1000
    assert metrics["features"] == evaluator["id"] and metrics["features"].startswith("evaluator-")
    assert metrics["evaluator_accuracy"] == evaluator["accuracy"] > 0.5
    assert 0 <= metrics["fid_floor"] < metrics["fid"]  # two real sets are closer than real vs two-epoch fakes
    assert metrics["kid_mean_floor"] < metrics["kid_mean"]
    assert 1.0 <= metrics["is_mean"] <= 10.0 and 1.0 <= metrics["is_mean_floor"] <= 10.0
    for key in ("precision", "recall", "precision_floor", "recall_floor", "copy_rate", "copy_rate_floor",
                "class_share_distance"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["copy_rate_floor"] == pytest.approx(0.05, abs=0.002)  # the 5th percentile, 1000 test images
    sweep = (repo / "results/evaluate/truncation.csv").read_text().splitlines()
    assert sweep[0] == "psi,fid,precision,recall" and len(sweep) == 4
    assert float(sweep[1].split(",")[1]) == pytest.approx(metrics["fid"], rel=1e-5)  # psi = 1 is the stage's FID


def test_dvc_shows_metrics_and_plots(tiny_repo, venv_env):
    repo, _ = tiny_repo
    shown = json.loads(dvc(repo, "metrics", "show", "--json", env=venv_env).stdout)
    workspace = shown[""]["data"]
    assert "fid" in workspace["results/evaluate/metrics.json"]["data"]
    assert "accuracy" in workspace["results/evaluator/metrics.json"]["data"]
    plots = json.loads(dvc(repo, "plots", "show", "--json", env=venv_env).stdout)
    assert "errors" not in plots, plots.get("errors")
    for name in ("Losses", "D(x) and D(G(z))", "FID during training"):
        content = json.dumps(plots["data"][name])
        assert '"step"' in content and ("d_loss" in content or "d_real" in content or '"fid"' in content), name
    assert "results/train/samples/epoch_0001.png" in plots["data"]
    for name in ("Truncation: FID per psi", "Truncation: precision and recall per psi",
                 "Class shares of samples (evaluator's class; per_class.csv has the real shares)"):
        assert name in plots["data"], name
    assert '"psi"' in json.dumps(plots["data"]["Truncation: FID per psi"])
    for image in ("nearest_neighbours.png", "truncation.png", "interpolation.png"):
        assert f"results/evaluate/{image}" in plots["data"], image


def test_generate_from_the_trained_generator(tiny_repo, venv_env):
    repo, _ = tiny_repo
    run([sys.executable, "-m", "fashiongen", "generate", "--n", "16", "--out", "s.npz", "--seed", "3"], repo, env=venv_env)
    images = np.load(repo / "s.npz")["images"]
    assert images.shape == (16, 1, 28, 28) and images.dtype == np.uint8 and images.std() > 0


def test_second_repro_reruns_nothing(tiny_repo, venv_env):
    repo, _ = tiny_repo
    second = dvc(repo, "repro", env=venv_env)
    assert "Running stage" not in second.stdout
    assert "Data and pipelines are up to date." in second.stdout


def test_a_photo_dropped_into_the_default_folder_reruns_only_the_download(tiny_repo, venv_env):
    """data/photos is a dependency whatever the source; with Fashion-MNIST its change stops at download."""
    repo, _ = tiny_repo
    photo = repo / "data" / "photos" / "new.png"
    photo.write_bytes(b"a photo")
    try:
        rerun = dvc(repo, "repro", env=venv_env)
    finally:
        photo.unlink()
    assert [line for line in rerun.stdout.splitlines() if line.startswith("Running stage")] == [
        "Running stage 'download':"
    ]
    assert "Stage 'preprocess' didn't change, skipping" in rerun.stdout
    dvc(repo, "repro", env=venv_env)  # back to the committed state for the tests after this one


def snapshot(repo, work_area=True):
    """sha256 of every output file, by path (``work_area=False``: without the train stage's models/checkpoints)."""
    import hashlib

    files = {}
    for folder in ("data", "models", "results"):
        for path in sorted((repo / folder).rglob("*")):
            if path.is_file() and (work_area or "checkpoints" not in path.relative_to(repo).parts):
                files[str(path.relative_to(repo))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def test_bad_params_fail_fast_and_change_no_output(tiny_repo, venv_env):
    repo, _ = tiny_repo
    params_path = repo / "params.yaml"
    good = params_path.read_text()
    before = snapshot(repo)
    misspelt = YAML(typ="safe").load(good)
    misspelt["train"]["epoch"] = misspelt["train"].pop("epochs")
    with open(params_path, "w") as handle:
        YAML().dump(misspelt, handle)
    try:
        failed = run([sys.executable, "-m", "dvc", "repro"], repo, check=False, env=venv_env)
    finally:
        params_path.write_text(good)
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert "train.epoch: unknown key. Did you mean 'train.epochs'?" in output
    assert "Traceback" not in output
    assert snapshot(repo) == before


def generator_weights(repo):
    import torch

    return torch.load(repo / "models/generator.pt", weights_only=True)["state_dict"]


def tsv_steps(repo, name="d_loss"):
    return (repo / f"results/train/plots/metrics/{name}.tsv").read_text().splitlines()


def test_training_killed_with_sigkill_resumes_and_ends_identical(tiny_repo, venv_env):
    import os
    import shutil
    import signal
    import subprocess
    import time

    import torch

    repo, _ = tiny_repo
    reference, reference_history = generator_weights(repo), tsv_steps(repo)
    outputs = snapshot(repo, work_area=False)
    checkpoints = repo / "models/checkpoints"
    shutil.rmtree(checkpoints)

    training = subprocess.Popen(
        [sys.executable, "stages/train.py"], cwd=repo, env=venv_env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not (checkpoints / "epoch_0001.pt").exists():
        assert training.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)
    os.killpg(training.pid, signal.SIGKILL)
    training.wait()
    assert not (checkpoints / "epoch_0002.pt").exists(), "the kill came too late to interrupt training"
    assert snapshot(repo, work_area=False) == outputs  # the killed run changed no output

    # the killed run changed no output, so DVC sees the stage as done: a forced rerun (like a rerun after a
    # params change that the kill interrupted) finds the interrupted run's checkpoint and resumes it
    assert "Data and pipelines are up to date" in dvc(repo, "status", env=venv_env).stdout
    resumed = dvc(repo, "repro", "--force", "--single-item", "train", env=venv_env)
    assert "Running stage 'train'" in resumed.stdout
    assert "resuming from models/checkpoints/epoch_0001.pt (epoch 1" in resumed.stdout + resumed.stderr
    weights = generator_weights(repo)
    assert all(torch.equal(weights[k], reference[k]) for k in reference)
    assert tsv_steps(repo) == reference_history  # same steps, same loss values: history continued, not restarted


def test_same_params_and_seed_give_identical_metrics(tiny_repo, venv_env):
    repo, _ = tiny_repo
    before = {name: (repo / name).read_bytes() for name in
              ("results/evaluate/metrics.json", "results/evaluator/metrics.json")}
    rerun = dvc(repo, "repro", "--force", env=venv_env)  # a finished run is never resumed: trains again
    for stage in STAGES:
        assert f"Running stage '{stage}'" in rerun.stdout
    for name, content in before.items():
        assert (repo / name).read_bytes() == content, name


def test_report_renders_in_headless_chromium_with_every_image(tiny_repo, venv_env, tmp_path):
    from PIL import Image, ImageStat

    from helpers import render_in_chromium

    repo, _ = tiny_repo
    run([sys.executable, "-m", "fashiongen", "report", "--out", str(tmp_path / "report.html")], repo, env=venv_env)
    page = (tmp_path / "report.html").read_text()
    assert "FashionGen report" in page and "fid_floor" not in page  # floors are shown beside their metric
    rendered = render_in_chromium(tmp_path / "report.html", tmp_path / "report.png")
    images = rendered["images"]
    # 3 curves, grids at the start, 1/4, 1/2, 3/4 and end of a 10-epoch run, the evaluated samples; the look
    # inside (issue 18): nearest-neighbour grid, class histogram, per-class FID (the default on Fashion-MNIST is a
    # label model: model.condition auto), truncation curve and grid, interpolation strips
    assert len(images) == 15
    alts = [image["alt"] for image in images]
    for alt in ("nearest training images", "class histogram", "per-class FID", "truncation curve", "truncation grid",
                "interpolation strips"):
        assert alt in alts, alt
    for heading in ("Memorisation: samples nearest to a training image", "Classes", "Truncation: quality against variety",
                    "Interpolation"):
        assert f"<h3>{heading}</h3>" in page, heading
    assert "Copy rate" in page and "Under-produced classes" in page
    assert all(image["complete"] and image["width"] > 0 for image in images)
    assert all(image["src"].startswith("data:image/png;base64") for image in images)  # self-contained
    screenshot = Image.open(tmp_path / "report.png").convert("L")
    assert screenshot.size[1] > 900 and ImageStat.Stat(screenshot).stddev[0] > 10  # a long, non-blank page


def test_committed_ci_baseline_passes_and_a_broken_generator_fails(tiny_repo, venv_env, tmp_path):
    """The metric gate: the tiny profile reproduces .ci/baseline.json; an untrained generator fails on FID."""
    import os

    import torch

    from fashiongen.gan.artifact import build_generator, load_generator, save_generator
    from helpers import REPO_ROOT

    repo, _ = tiny_repo
    gate = [sys.executable, "-m", "fashiongen", "compare", str(REPO_ROOT / ".ci" / "baseline.json")]
    tolerances = ["--tolerances", str(REPO_ROOT / ".ci" / "tolerances.yaml")]
    passed = run([*gate, "results/evaluate/metrics.json", *tolerances], repo, check=False, env=venv_env)
    assert passed.returncode == 0, passed.stdout

    scratch = tmp_path / "broken"
    (scratch / "models").mkdir(parents=True)
    for name in ("stages", "fashiongen", "params.yaml"):
        os.symlink(repo / name, scratch / name)
    (scratch / "data").mkdir()
    os.symlink(repo / "data" / "prepared", scratch / "data" / "prepared")
    os.symlink(repo / "models" / "evaluator.pt", scratch / "models" / "evaluator.pt")
    trained = load_generator(repo / "models" / "generator.pt")
    torch.manual_seed(0)
    save_generator(scratch / "models" / "generator.pt", build_generator(trained.spec), trained.spec, trained.classes, trained.params)
    run([sys.executable, "stages/evaluate.py"], scratch, env=venv_env)
    failed = run([*gate, str(scratch / "results/evaluate/metrics.json"), *tolerances], repo, check=False, env=venv_env)
    assert failed.returncode == 1
    assert "| fid |" in failed.stdout and "WORSE" in failed.stdout and "FAIL: fid" in failed.stdout


@pytest.mark.parametrize("condition", ["label", "encoding"])
def test_conditional_models_run_through_dvc_exp_run(tiny_repo, venv_env, condition):
    """Each condition end to end through DVC (``--temp``: the workspace keeps the tiny run's outputs)."""
    repo, _ = tiny_repo
    before = snapshot(repo)
    ran = dvc(repo, "exp", "run", "--temp", "-n", f"cond-{condition}", "-S", f"model.condition={condition}",
              "-S", "train.epochs=1", env=venv_env)
    for stage in ("train_encoder", "encode", "train", "evaluate"):
        assert f"Running stage '{stage}'" in ran.stdout, stage
    shown = json.loads(dvc(repo, "exp", "show", "--json", env=venv_env).stdout)
    metrics = next(
        rev["data"]["metrics"]["results/evaluate/metrics.json"]["data"]
        for commit in shown for exp in commit.get("experiments") or [] for rev in exp.get("revs", [])
        if exp.get("name") == f"cond-{condition}"
    )
    assert 0 <= metrics["class_consistency"] <= 1 and metrics["diversity"] > 0
    assert metrics["intra_fid_mean"] > 0 and 0 <= metrics["copy_rate"] <= 1
    assert snapshot(repo) == before


def test_fewer_epochs_in_the_workspace_train_afresh_and_checkout_restores_the_finished_run(tiny_repo, venv_env):
    """`dvc exp run -S train.epochs=2` after a 10-epoch run: a real 2-epoch model, not the old weights relabelled."""
    import torch

    repo, _ = tiny_repo
    run(["git", "add", "-A"], repo)  # the finished run as a commit: its lock, metrics and curves in git
    run(["git", "commit", "-qm", "finished tiny run"], repo)
    finished = snapshot(repo, work_area=False)
    ran = dvc(repo, "exp", "run", "-n", "two-epochs", "-S", "train.epochs=2", env=venv_env)
    log = ran.stdout + ran.stderr
    assert "belongs to another run (train.epochs: 10 -> 2); training from scratch" in log
    assert "epochs 1..2" in log
    assert torch.load(repo / "models/generator.pt", weights_only=True)["info"]["epoch"] == 2
    assert json.loads((repo / "results/train/metrics.json").read_text())["epoch"] == 2
    assert sorted(p.name for p in (repo / "results/train/samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png"]
    shown = json.loads(dvc(repo, "exp", "show", "--json", env=venv_env).stdout)
    assert any(exp.get("name") == "two-epochs" for commit in shown for exp in commit.get("experiments") or [])

    # back to the committed 10-epoch run: git and DVC restore its outputs; nothing reruns
    run(["git", "checkout", "--", "."], repo)
    dvc(repo, "checkout", env=venv_env)
    assert snapshot(repo, work_area=False) == finished
    assert "Running stage" not in dvc(repo, "repro", env=venv_env).stdout


def test_a_code_edit_retrains_and_changes_a_run_cannot_see_publish_it_again(tiny_repo, venv_env):
    """Last in this module: it leaves the pipeline's code and params edited (issue 37 item 4).

    An edit of code training runs trains from scratch (here a no-op statement, so the same weights bit for
    bit). Then a comment, and params the label model does not use: DVC reruns the train stage, which
    publishes the finished run again without training, byte for byte, so evaluate does not rerun.
    """
    import torch

    repo, _ = tiny_repo
    # a fixed OpenMP wait policy: a training that restarts itself when the machine's load changes would resume
    # (on the same weights) and blur what this test reads in the log
    venv_env = {**venv_env, "OMP_WAIT_POLICY": "PASSIVE"}
    reference = generator_weights(repo)
    losses = repo / "fashiongen/gan/losses.py"
    losses.write_text(losses.read_text() + "\n_EDITED_AFTER_A_FINISHED_RUN = True\n")
    rerun = dvc(repo, "repro", env=venv_env)
    log = rerun.stdout + rerun.stderr
    assert "Running stage 'train'" in log
    assert "code: the training code changed" in log and "training from scratch" in log
    assert "epochs 1..10" in log and "resuming" not in log
    weights = generator_weights(repo)
    assert all(torch.equal(weights[k], reference[k]) for k in reference)
    finished = snapshot(repo, work_area=False)

    losses.write_text(losses.read_text() + "# a comment after a finished run\n")
    commented = dvc(repo, "repro", env=venv_env)
    log = commented.stdout + commented.stderr
    assert "Running stage 'train'" in log and "publishing it again, training nothing" in log
    assert "code: comments, docstrings or layout only" in log and "epochs 1..10" not in log
    assert "Running stage 'evaluate'" not in log
    assert snapshot(repo, work_area=False) == finished

    unused = dvc(repo, "exp", "run", "-S", "model.clusters=7", "-S", "model.gp_weight=3.0", env=venv_env)
    log = unused.stdout + unused.stderr
    assert "Running stage 'train'" in log and "publishing it again, training nothing" in log
    assert "model.clusters: 20 -> 7" in log and "model.gp_weight: 10.0 -> 3.0" in log
    assert "model.clusters (model.condition cluster only)" in log  # the unused params, named
    assert "Running stage 'evaluate'" not in log
    assert snapshot(repo, work_area=False) == finished
