"""`fashiongen check-folder` (issue 16): the pipeline's view of a folder, before training, writing nothing."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from PIL import Image

from fashiongen.cli import main
from helpers import doc_block, make_photo_folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_photo_folder(tmp_path_factory.mktemp("check"), per_class=40)  # 123 images: enough to train


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
    assert lines[0].endswith(": 3 class(es); 123 images used, 1 skipped, 1 not images, 1 ignored")
    rows = {line.split()[0]: line.split() for line in lines if line.split()[:1] in (["bags"], ["shirts"], ["shoes"])}
    assert rows["bags"][1] == "41" and rows["shirts"][1] == "40" and rows["shoes"][1] == "42"  # 40 + a copy, 40 + 2 WebPs
    assert int(rows["bags"][2]) + int(rows["bags"][3]) == 41
    assert "40..150 × 40..128" in out and "RGB 42" in out
    assert "  shirts/corrupt.jpg: is not a readable image" in out
    assert "  notes.txt: not an image by content or name" in out
    assert "  .hidden: hidden folder (not scanned)" in out
    # 40 images per class is enough; the copy sits in one class only; 123 images leave a small test split
    assert "has 40" not in out and "same file" not in out
    assert "warning: the test split holds" in out and "fewer than evaluate.num_samples=10000" in out
    assert lines[-1] == "would train: yes"


def test_small_classes_and_files_in_two_classes_are_warned_about(photos, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    for path in [*sorted((folder / "shoes").glob("*.png")), *sorted((folder / "shoes").glob("*.jpg"))[:4]]:
        path.unlink()
    shutil.copyfile(folder / "bags" / "bag_3.jpg", folder / "shoes" / "also_a_bag.jpg")
    status, out, _ = check([folder], capsys, tmp_path, monkeypatch)
    assert status == 0, out
    assert "warning: class shoes has 19 readable image(s), fewer than 20" in out
    assert "warning: the same file is in 2 classes: bags/bag_3.jpg, shoes/also_a_bag.jpg" in out


def test_a_folder_that_would_not_train_exits_2_with_the_problem(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "photos"
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
    Image.new("RGB", (20, 20), (1, 2, 3)).save(folder / "a" / "only.png")
    (folder / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    status, out, _ = check([folder], capsys, tmp_path, monkeypatch)
    assert status == 2
    assert "problem: the split holds" in out and "both splits need images" in out
    assert out.splitlines()[-1].startswith("would train: no")
    assert "  b/broken.png: is not a readable image" in out


def test_params_apply_and_a_label_model_needs_classes(photos, tmp_path, capsys, monkeypatch):
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in sorted(photos.glob("*/*.png"))[:12]:
        shutil.copyfile(path, flat / path.name)
    (tmp_path / "params.yaml").write_text("model:\n  condition: label\nevaluate:\n  num_samples: 100\n")
    status, out, _ = check([flat], capsys, tmp_path, monkeypatch)
    assert status == 2 and "classes: unlabelled: no subfolders; put the images in one subfolder per class" in out
    assert "model.condition: label (the data has no class labels)" in out
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
    listing, delete = doc_block("docs/troubleshooting.md", "## Links to nothing").replace("PHOTOS", str(folder)).split("\n\n")
    found = subprocess.run(["bash", "-c", listing], capture_output=True, text=True).stdout
    assert found.splitlines() == [str(folder / "shoes" / "gone.jpg")]
    subprocess.run(["bash", "-c", delete], capture_output=True)
    assert not os.path.lexists(folder / "shoes" / "gone.jpg") and (folder / "shoes" / "loop").is_symlink()
    assert check([folder], capsys, tmp_path, monkeypatch)[0] == 0


def test_the_pipelines_own_refusals_show_in_the_check(photos, tmp_path, capsys, monkeypatch):
    """A folder that download would refuse (fewer than 100 images with the defaults) does not pass the check."""
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    for path in sorted(folder.glob("*/*.jpg")):
        path.unlink()
    status, out, _ = check([folder], capsys, tmp_path, monkeypatch)
    assert status == 2 and out.splitlines()[-1].startswith("would train: no")
    assert "problem: the evaluation needs at least 100 real images and there are 63" in out


def test_a_loose_file_beside_class_folders_is_named_and_left_out_and_leftovers_are_ignored(photos, tmp_path, capsys,
                                                                                           monkeypatch):
    """Issue 37 item 2: cover.jpg beside three class folders does not make the folder unlabelled."""
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    shutil.copyfile(photos / "bags" / "bag_1.jpg", folder / "cover.jpg")
    (folder / "shoes" / ".ipynb_checkpoints").mkdir()
    shutil.copyfile(photos / "shoes" / "shoe_0.png", folder / "shoes" / ".ipynb_checkpoints" / "shoe_0-checkpoint.png")
    shutil.copyfile(photos / "bags" / "bag_1.jpg", folder / "bags" / "bag_1.jpg~")
    shutil.copyfile(photos / "bags" / "bag_3.jpg", folder / "bags" / "bag_3.jpg.part")
    status, out, _ = check([folder], capsys, tmp_path, monkeypatch)
    assert status == 0, out
    assert out.splitlines()[0].endswith(": 3 class(es); 123 images used, 1 skipped, 1 not images, 5 ignored")
    assert ("classes: labelled: 3 class folders (first-level subfolders holding images); 1 image(s) beside them, "
            "in no class, left out: cover.jpg") in out
    assert "model.condition: auto trains a label model (the data has class labels)" in out
    assert "  cover.jpg: an image beside the class folders, in no class: left out" in out
    assert "  shoes/.ipynb_checkpoints: Jupyter notebook checkpoints (.ipynb_checkpoints)" in out
    assert "  bags/bag_1.jpg~: editor backup (name~)" in out and "  bags/bag_3.jpg.part: unfinished download (.part)" in out


def test_many_loose_images_make_the_folder_unlabelled_and_the_check_says_which(photos, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    for path in sorted((folder / "bags").glob("*.png"))[:14]:
        shutil.move(path, folder / path.name)
    status, out, _ = check([folder], capsys, tmp_path, monkeypatch)
    assert status == 0, out
    assert "classes: unlabelled: 14 of 124 images sit at the top level beside 3 subfolders (more than 10%" in out
    assert "model.condition: auto trains a cluster model (the data has no class labels)" in out


def test_an_entry_that_cannot_be_read_fails_the_check_as_it_would_fail_dvc(photos, tmp_path, capsys, monkeypatch):
    """Issue 37 item 6 (root reads every file, so the refusal of the OS is simulated)."""
    from fashiongen.data import folder_scan

    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    locked = str(folder / "shoes" / "shoe_1.jpg")

    def refusing_open(path, *args, **kwargs):
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(folder_scan, "open", refusing_open, raising=False)
    status, out, _ = check([folder], capsys, tmp_path, monkeypatch)
    assert status == 2
    assert "  shoes/shoe_1.jpg: cannot be read (Permission denied)" in out
    assert ("problem: 1 entry cannot be read (shoes/shoe_1.jpg): DVC stops while hashing the folder; give yourself "
            "read access") in out
    assert "find PHOTOS ! -readable" in doc_block("docs/troubleshooting.md", "## Files you cannot read")
