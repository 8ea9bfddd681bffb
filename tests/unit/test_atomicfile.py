"""libcalico.atomicfile: the target replaced whole, mode set, directory made; on failure the
target is untouched and no temporary file is left."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from libcalico import atomicfile


def test_replaces_the_file_whole_with_its_mode_and_makes_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "d" / "status.json"
    atomicfile.write_text(path, "one", prefix=".status-")
    atomicfile.write_text(path, "two", prefix=".status-")
    assert path.read_text() == "two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["status.json"]


def test_a_failed_replace_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    (target / "inside").mkdir(parents=True)  # a non-empty directory cannot be replaced
    with pytest.raises(OSError):
        atomicfile.write_text(target, "x", prefix=".t-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert [p.name for p in target.iterdir()] == ["inside"]
