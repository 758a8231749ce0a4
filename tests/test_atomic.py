"""Atomic writes: all or nothing, with ordinary permissions."""

import os
import stat

import pytest

from fashiongen.atomic import atomic_directory, atomic_write, write_json


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_outputs_get_umask_permissions_not_owner_only(tmp_path):
    write_json(tmp_path / "m.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o666 & ~mask


def test_directory_is_swapped_only_when_complete(tmp_path):
    target = tmp_path / "prepared"
    target.mkdir()
    (target / "meta.json").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as staging:
            (staging / "meta.json").write_text("new")
            raise RuntimeError("failed half way")
    assert (target / "meta.json").read_text() == "old"
    with atomic_directory(target) as staging:
        (staging / "meta.json").write_text("new")
    assert (target / "meta.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]
