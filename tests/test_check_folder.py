"""`fashiongen check-folder` (issue 16): the pipeline's view of a folder, before training, writing nothing."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from PIL import Image

from fashiongen.cli import main
from helpers import make_photo_folder, readme_block


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_photo_folder(tmp_path_factory.mktemp("check"), per_class=20)


def snapshot(root):
    return sorted((p.relative_to(root).as_posix(), p.stat().st_mtime_ns) for p in root.rglob("*"))


def check(args, capsys, cwd, monkeypatch):
    monkeypatch.chdir(cwd)
    status = main(["check-folder", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_folder_that_would_train_is_reported_per_class_and_nothing_is_written(photos, tmp_path, capsys, monkeypatch):
    before = snapshot(photos)
    status, out, _ = check([photos], capsys, tmp_path, monkeypatch)
    assert status == 0, out
    assert snapshot(photos) == before and list(tmp_path.iterdir()) == []
    lines = out.splitlines()
    assert lines[0].endswith(": 3 class(es); 63 images used, 1 skipped, 1 not images, 1 ignored")
    rows = {line.split()[0]: line.split() for line in lines if line.split()[:1] in (["bags"], ["shirts"], ["shoes"])}
    assert rows["bags"][1] == "21" and rows["shirts"][1] == "20" and rows["shoes"][1] == "22"  # 20 + a copy, 20 + 2 WebPs
    assert int(rows["bags"][2]) + int(rows["bags"][3]) == 21
    assert "40..150 × 40..128" in out and "RGB 22" in out
    assert "  shirts/corrupt.jpg: is not a readable image" in out
    assert "  notes.txt: not an image by content or name" in out
    assert "  .hidden: hidden folder (not scanned)" in out
    # 20 images per class is enough; the copy sits in one class only; 63 images leave a small test split
    assert "has 20" not in out and "same file" not in out
    assert "warning: the test split holds" in out and "fewer than evaluate.num_samples=10000" in out
    assert lines[-1] == "would train: yes"


def test_small_classes_and_files_in_two_classes_are_warned_about(photos, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    for path in sorted((folder / "shoes").glob("*.png"))[:5]:
        path.unlink()
    shutil.copyfile(folder / "bags" / "bag_3.jpg", folder / "shoes" / "also_a_bag.jpg")
    status, out, _ = check([folder], capsys, tmp_path, monkeypatch)
    assert status == 0
    assert "warning: class shoes has 18 readable image(s), fewer than 20" in out
    assert "warning: the same file is in 2 classes: bags/bag_3.jpg, shoes/also_a_bag.jpg" in out


def test_a_folder_that_would_not_train_exits_2_with_the_problem(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "photos"
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
    Image.new("RGB", (20, 20), (1, 2, 3)).save(folder / "a" / "only.png")
    (folder / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    status, out, _ = check([folder], capsys, tmp_path, monkeypatch)
    assert status == 2
    assert "problem: no readable image falls in the" in out and out.splitlines()[-1].startswith("would train: no")
    assert "  b/broken.png: is not a readable image" in out


def test_params_apply_and_a_label_model_needs_classes(photos, tmp_path, capsys, monkeypatch):
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in sorted(photos.glob("*/*.png"))[:12]:
        shutil.copyfile(path, flat / path.name)
    (tmp_path / "params.yaml").write_text("model:\n  condition: label\nevaluate:\n  num_samples: 100\n")
    status, out, _ = check([flat], capsys, tmp_path, monkeypatch)
    assert status == 2 and "(unlabelled: no class subfolders)" in out
    assert "problem: model.condition=label needs classes" in out and "evaluate.num_samples=100" in out


def test_names_dvc_cannot_hash_make_the_check_fail(photos, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    with open(os.fsencode(folder / "bags") + b"/caf\xe9.png", "wb") as handle:
        handle.write((folder / "bags" / "bag_0.png").read_bytes())
    status, out, _ = check([folder], capsys, tmp_path, monkeypatch)
    assert status == 2
    assert "problem: 1 name(s) are not valid UTF-8 (bags/caf\\xe9.png): DVC cannot hash the folder" in out


def test_a_missing_folder_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    status, out, err = check([tmp_path / "nope"], capsys, tmp_path, monkeypatch)
    assert status == 2 and out == ""
    assert err.startswith("error: data.folder=") and "is not a folder" in err
    status, out, err = check([tmp_path, "--params", tmp_path], capsys, tmp_path, monkeypatch)
    assert status == 2 and err == f"error: --params {tmp_path} is not a file; give the path of a params.yaml.\n"


def test_links_to_nothing_make_the_check_fail_and_the_readme_commands_remove_them(photos, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    os.symlink(tmp_path / "gone.jpg", folder / "shoes" / "gone.jpg")
    os.symlink(folder / "bags", folder / "shoes" / "loop")  # a loop is ignored, not a problem
    status, out, _ = check([folder], capsys, tmp_path, monkeypatch)
    assert status == 2 and "  shoes/gone.jpg: is a symbolic link to nothing (its target is missing)" in out
    assert "problem: 1 symbolic link(s) point nowhere (shoes/gone.jpg): DVC stops while hashing the folder" in out
    listing, delete = readme_block("### Links to nothing").replace("PHOTOS", str(folder)).split("\n\n")
    found = subprocess.run(["bash", "-c", listing], capture_output=True, text=True).stdout
    assert found.splitlines() == [str(folder / "shoes" / "gone.jpg")]
    subprocess.run(["bash", "-c", delete], capture_output=True)
    assert not os.path.lexists(folder / "shoes" / "gone.jpg") and (folder / "shoes" / "loop").is_symlink()
    assert check([folder], capsys, tmp_path, monkeypatch)[0] == 0
