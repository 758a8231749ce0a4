"""Helpers shared by the tests (not fixtures: plain functions)."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
PIPELINE_FILES = ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "stages", "fashiongen", "data/photos")


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array (the inverse of fashiongen.data.idx.parse_idx)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_gz(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as handle:
        handle.write(data)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fake_fashion_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random 28×28 images with labels cycling through the 10 classes."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def copy_pipeline(dest: Path) -> Path:
    """A fresh git + DVC repository holding this checkout's pipeline files."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PIPELINE_FILES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, dest / name)
    run(["git", "init", "-q"], dest)
    run(["git", "config", "user.email", "ci@example.com"], dest)
    run(["git", "config", "user.name", "FashionGen CI"], dest)
    run([sys.executable, "-m", "dvc", "init", "-q"], dest)
    run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], dest)
    return dest


def run(cmd: list[str], cwd: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def make_prepared(root: Path, n_train: int = 192, n_test: int = 128) -> None:
    """A prepared-data folder of blobs whose brightness depends on the class (simple to start learning)."""
    from fashiongen.atomic import save_npy, write_json

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        images = (rng.random((n, 1, 28, 28)) * 40 + labels[:, None, None, None] * 20).astype(np.uint8)
        save_npy(root / f"{split}_images.npy", images)
        save_npy(root / f"{split}_labels.npy", labels.astype(np.int64))
    write_json(
        root / "meta.json",
        {"classes": [str(i) for i in range(10)], "num_classes": 10, "channels": 1, "image_size": 28,
         "counts": {"train": n_train, "test": n_test}, "source": "synthetic", "subset": None},
    )


def paths(root: Path, name: str = "run"):
    """The train stage's paths for a run kept under ``root/name``."""
    from fashiongen.pipeline.train import TrainPaths

    return TrainPaths(
        prepared=root / "prepared",
        encodings=root / "encodings",
        evaluator=root / "evaluator.pt",
        generator=root / name / "generator.pt",
        best_generator=root / name / "generator_best.pt",
        checkpoints=root / name / "checkpoints",
        results=root / name / "results",
    )


def make_training_root(root: Path) -> Path:
    """``root`` with prepared blobs (192 train, 128 test) and a small untrained evaluator (seeded): what a run needs."""
    import torch

    make_prepared(root / "prepared")
    torch.manual_seed(0)
    make_evaluator(root / "evaluator.pt")
    return root


def train_in(root: Path, params, name: str):
    """Train ``params`` on ``root``'s prepared data and evaluator into ``root/name``: (run paths, last stats)."""
    import os

    from fashiongen.pipeline.train import train_gan

    run = paths(root, name)
    cwd = os.getcwd()
    os.chdir(root)  # dvclive looks for a repository from the working directory
    try:
        return run, train_gan(params, run)
    finally:
        os.chdir(cwd)


def train_and_evaluate(root: Path, params, name: str):
    """Train ``params`` on ``root``'s prepared data and evaluator, then score it: (run paths, last stats, metrics)."""
    import json

    from fashiongen.pipeline.evaluate import EvaluatePaths, evaluate

    run, last = train_in(root, params, name)
    metrics_path = root / name / "metrics.json"
    evaluate(params.evaluate,
             EvaluatePaths(root / "prepared", root / "evaluator.pt", run.generator, metrics_path,
                           root / name / "samples.png", root / "encodings"), device_name="cpu")
    return run, last, json.loads(metrics_path.read_text())


def tiny_train_params(**train):
    """Params of a training run that takes a second or two on the blobs of :func:`make_prepared`."""
    from fashiongen.config import parse_params

    return parse_params(
        {
            "model": {"g_width": 8, "d_width": 8, "z_dim": 16},
            "train": {"epochs": 2, "batch_size": 32, "log_every": 2, "eval_samples": 100, "device": "cpu", **train},
            "data": {"subset": 100},
            "evaluate": {"num_samples": 100},
        }
    )


def with_train(params, **changes):
    return params.model_copy(update={"train": params.train.model_copy(update=changes)})


def with_model(params, **changes):
    return params.model_copy(update={"model": params.model.model_copy(update=changes)})


def generator_weights(path: Path) -> dict:
    from fashiongen.gan.artifact import load_generator

    return load_generator(path).module.state_dict()


def assert_same_weights(a: dict, b: dict) -> None:
    import torch

    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def chromium_executable() -> str:
    """A Chromium-family browser for the rendering tests: Debian's chromium, or one named by the environment."""
    import os
    import shutil

    candidates = [os.environ.get("PLAYWRIGHT_CHROMIUM_EXECUTABLE", "")]
    candidates += [shutil.which(name) or "" for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    raise AssertionError(
        "no Chromium-family browser found: install Debian's `chromium` (.ci/setup does) "
        "or set PLAYWRIGHT_CHROMIUM_EXECUTABLE"
    )


def render_in_chromium(page_path: Path, screenshot: Path) -> dict:
    """Open ``page_path`` in headless Chromium; how many images loaded, and a full-page screenshot."""
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=args)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images).map(i => ({complete: i.complete, width: i.naturalWidth, alt: i.alt, "
                "src: i.src.slice(0, 22)}))"
            )
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"images": images}


def make_evaluator(path: Path, classes: list[str] | None = None, image_size: int = 28, seed: int | None = None) -> None:
    """A small untrained evaluator (a ruler for tests that only need one that works), naming ``classes``
    (default "0".."9"); ``seed`` fixes its weights (default: torch's global generator as it is)."""
    import torch

    from fashiongen.metrics.features import save_evaluator
    from fashiongen.models.evaluator import Evaluator

    classes = classes or [str(i) for i in range(10)]
    config = {"channels": 1, "num_classes": len(classes), "image_size": image_size, "width": 8, "feature_dim": 16}
    if seed is not None:
        torch.manual_seed(seed)
    save_evaluator(path, Evaluator(**config), config, classes, 0.5)


CLASS_COLOURS = {"bags": (200, 30, 30), "shirts": (30, 200, 30), "shoes": (30, 30, 200)}


def make_photo_folder(root: Path, per_class: int = 20, seed: int = 0) -> Path:
    """A folder of RGB 'photos' in three class subfolders, like a small DeepFashion.

    Each class has its own colour (bags red, shirts green, shoes blue) on a
    noisy background; sizes vary (wide, tall, small, large), formats rotate
    through PNG and JPEG, two WebP files sit in a nested folder, one file is a
    byte copy of another (a duplicate), ``shirts/corrupt.jpg`` is not an image,
    and a text file and a hidden folder must be ignored.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = [(96, 64), (64, 96), (40, 40), (150, 120), (128, 128)]
    for name, colour in CLASS_COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            width, height = sizes[i % len(sizes)]
            pixels = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
            pixels[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = colour
            suffix = ".png" if i % 2 == 0 else ".jpg"
            Image.fromarray(pixels).save(folder / f"{name[:-1]}_{i}{suffix}")
    nested = root / "shoes" / "nested"
    nested.mkdir()
    for i in range(2):
        pixels = np.zeros((70, 50, 3), dtype=np.uint8)
        pixels[20:50, 10:40] = CLASS_COLOURS["shoes"]
        Image.fromarray(pixels).save(nested / f"odd_{i}.webp")
    shutil.copyfile(root / "bags" / "bag_0.png", root / "bags" / "bag_copy.png")
    (root / "shirts" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / ".hidden" / "x.png")
    return root


def make_small_photo_folder(root: Path, per_class: int, seed: int = 0) -> Path:
    """``per_class`` clean 48×40 RGB PNG 'photos' in each of the three class folders of :data:`CLASS_COLOURS`.

    Like :func:`make_photo_folder` without its odd files: a folder of exactly
    ``3 × per_class`` readable images (the small-folder tests and benchmark).
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name, colour in CLASS_COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (48, 40, 3), dtype=np.uint8)
            pixels[12:36, 10:30] = colour
            pixels[12:36, 10:30] += rng.integers(0, 40, (24, 20, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}_{i:03d}.png")
    return root

def make_generator(path: Path, condition: str = "none", z_dim: int = 16, cond_dim: int = 6, seed: int = 0):
    """A small untrained DCGAN generator file (28 px grey, width 8) for ``condition``; returns its spec."""
    import torch

    from fashiongen.gan.artifact import GeneratorSpec, build_generator, save_generator
    from fashiongen.models.conditioning import extra_noise

    spec = GeneratorSpec(
        z_dim=z_dim + extra_noise(condition), width=8, channels=1, image_size=28, condition=condition,
        num_classes=10 if condition != "none" else 0, cond_dim=cond_dim if condition != "none" else 0,
        encoder="encoder-test" if condition == "encoding" else None,
    )
    torch.manual_seed(seed)
    save_generator(path, build_generator(spec), spec, [f"class {i}" for i in range(10)], {})
    return spec


def make_varied_generator(path: Path, kind: str, seed: int = 0, gain: float = 20.0):
    """:func:`make_generator`'s untrained generator, made to draw varied images; returns its spec.

    Untrained, it draws nearly the same grey for every z (every pixel within a few levels of 128), against
    which "equal within one grey level" or "closer than random samples" would prove little. Here BatchNorm's
    running statistics are measured on 512 samples and the last layer's weights are multiplied by ``gain``, so
    samples differ by tens of grey levels per pixel.
    """
    import torch

    from fashiongen.gan.artifact import load_generator, save_generator
    from fashiongen.gan.sampling import noise

    spec = make_generator(path, kind, seed=seed)
    loaded = load_generator(path)
    module = loaded.module
    for layer in module.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.momentum = None  # a cumulative average over the batch below
            layer.reset_running_stats()
    z = noise(512, spec.z_dim, 1)
    cond = {"label": torch.arange(512) % 10, "encoding": torch.randn(512, spec.cond_dim)}.get(kind, torch.empty(512, 0))
    with torch.no_grad():
        module.train()
        module(z, cond)
        last = [layer for layer in module.modules() if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
        last.weight.mul_(gain)
    save_generator(path, module.eval(), spec, loaded.classes, {})
    return spec


# A small git + DVC repository shaped like FashionGen's outputs: metrics and curves are git-tracked
# (cache: false), the sample grids live in the DVC cache, so a `git clone` has the first but not the second.
FAKE_STAGE = '''\
import json, os
from PIL import Image
from ruamel.yaml import YAML
epochs = YAML(typ="safe").load(open("params.yaml"))["train"]["epochs"]
for folder in ("results/evaluate", "results/train/samples", "results/train/plots/metrics"):
    os.makedirs(folder, exist_ok=True)
json.dump({"fid": 10.0 + epochs, "fid_floor": 1.0, "num_samples": 10, "features": "evaluator-x",
           "evaluator_accuracy": 0.5}, open("results/evaluate/metrics.json", "w"))
open("results/train/plots/metrics/d_loss.tsv", "w").write("step\\td_loss\\n0\\t1.0\\n1\\t0.5\\n")
for epoch in range(1, epochs + 1):
    Image.new("L", (8, 8), 40 * epoch).save(f"results/train/samples/epoch_{epoch:04d}.png")
Image.new("L", (8, 8), 50).save("results/evaluate/samples.png")
'''
FAKE_DVC_YAML = """\
stages:
  fake:
    cmd: python make.py
    deps: [make.py]
    params: [train.epochs]
    outs:
      - results/train/plots/metrics:
          cache: false
      - results/train/samples
      - results/evaluate/samples.png
    metrics:
      - results/evaluate/metrics.json:
          cache: false
"""


def fake_results_repo(root: Path, run_pipeline: bool = True) -> Path:
    """A git + DVC repository with a fake stage writing FashionGen's result files (`dvc repro` it, or not)."""
    root.mkdir()
    (root / "make.py").write_text(FAKE_STAGE)
    (root / "dvc.yaml").write_text(FAKE_DVC_YAML)
    (root / "params.yaml").write_text("train:\n  epochs: 2\n")
    run(["git", "init", "-q"], root)
    run(["git", "config", "user.email", "ci@example.com"], root)
    run(["git", "config", "user.name", "FashionGen CI"], root)
    run([sys.executable, "-m", "dvc", "init", "-q"], root)
    run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], root)
    if run_pipeline:
        run([sys.executable, "-m", "dvc", "repro", "-q"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "pipeline"], root)
    return root

def doc_block(page: str, heading: str) -> str:
    """The first ```bash block after ``heading`` in ``page`` (relative to the repository root, e.g.
    "docs/troubleshooting.md"): tests run the commands the documentation gives."""
    text = (REPO_ROOT / page).read_text(encoding="utf-8")
    section = text[text.index(heading):]
    start = section.index("```bash\n") + len("```bash\n")
    return section[start:section.index("\n```", start)]

def dvc(repo: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``dvc ARGS`` in ``repo`` with this interpreter's DVC."""
    return run([sys.executable, "-m", "dvc", *args], repo, check=check, env=env)


def run_queue(repo: Path, jobs: int, env: dict, timeout_s: int = 600) -> subprocess.CompletedProcess:
    """``dvc queue start -j JOBS`` and wait until nothing is queued or running; fails on a failed experiment.

    The queue's workers inherit stdout: it goes to /dev/null, or this call
    would wait for the whole sweep. Returns the last ``dvc queue status``.
    """
    import time

    subprocess.run([sys.executable, "-m", "dvc", "queue", "start", "-j", str(jobs)], cwd=repo, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=120)
    deadline = time.monotonic() + timeout_s
    while True:
        status = dvc(repo, "queue", "status", env=env)
        if "Failed" in status.stdout:
            raise AssertionError("an experiment failed:\n" + status.stdout)
        if "Running" not in status.stdout and "Queued" not in status.stdout:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"the queue did not finish in {timeout_s} s:\n{status.stdout}")
        time.sleep(2)


def experiments(shown: list) -> dict[str, dict]:
    """``{name: data}`` of every experiment in ``dvc exp show --json`` output (data: params, metrics, deps, outs)."""
    found = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                data = rev.get("data", {})
                name = exp.get("name") or data.get("name")
                if name:
                    found[name] = data
    return found
