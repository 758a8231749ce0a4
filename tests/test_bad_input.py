"""Bad input through the real entry points: exit status 2, one clear message, no output changed."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from fashiongen.data.fashion_mnist import SPLIT_FILES
from helpers import REPO_ROOT, encode_idx, fake_fashion_split


def snapshot(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_stage(name, cwd, env):
    return subprocess.run([sys.executable, str(REPO_ROOT / "stages" / f"{name}.py")], cwd=cwd, capture_output=True, text=True, env=env)


def assert_one_clear_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def test_download_with_a_truncated_local_file(tmp_path, venv_env):
    local = tmp_path / "local"
    local.mkdir()
    (local / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 50)
    (tmp_path / "params.yaml").write_text(f"data:\n  local_dir: {local}\n  mirrors: []\n")
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(b"the previous, verified file")
    before = snapshot(raw)
    result = run_stage("download", tmp_path, venv_env)
    assert_one_clear_error(result, "train-images-idx3-ubyte", "apt-get install dataset-fashion-mnist")
    assert snapshot(raw) == before


def test_preprocess_with_a_wrong_idx_header(tmp_path, venv_env):
    raw = tmp_path / "data" / "raw"
    for split in ("train", "test"):
        images, labels = fake_fashion_split(20, 0)
        images_name, labels_name = SPLIT_FILES[split]
        (raw / images_name).parent.mkdir(parents=True, exist_ok=True)
        (raw / images_name).write_bytes(encode_idx(images))
        (raw / labels_name).write_bytes(encode_idx(labels))
    broken = raw / SPLIT_FILES["test"][0]
    broken.write_bytes(b"\x00\x00\x08\x03" + broken.read_bytes()[4:-10])  # header says more than the file holds
    prepared = tmp_path / "data" / "prepared"
    prepared.mkdir()
    (prepared / "meta.json").write_text('{"previous": true}')
    (tmp_path / "params.yaml").write_text("{}\n")
    result = run_stage("preprocess", tmp_path, venv_env)
    assert_one_clear_error(result, "t10k-images-idx3-ubyte", "truncated")
    assert snapshot(prepared) == {"meta.json": hashlib.sha256(b'{"previous": true}').hexdigest()}
    assert [p.name for p in (tmp_path / "data").iterdir() if p.name.startswith(".")] == []  # no staging left


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_generate_with_a_damaged_checkpoint(tmp_path, venv_env, damage):
    from fashiongen.gan.artifact import GeneratorSpec, build_generator, save_generator

    checkpoint = tmp_path / "generator.pt"
    spec = GeneratorSpec(8, 8, 1, 28)
    save_generator(checkpoint, build_generator(spec), spec, [], {})
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2] if damage == "truncate" else np.random.bytes(4096))
    (tmp_path / "grid.png").write_bytes(b"previous grid")
    result = subprocess.run(
        [sys.executable, "-m", "fashiongen", "generate", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "grid.png")],
        capture_output=True, text=True, env=venv_env,
    )
    assert_one_clear_error(result, "generator.pt is not a readable PyTorch checkpoint")
    assert (tmp_path / "grid.png").read_bytes() == b"previous grid"
