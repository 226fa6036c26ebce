"""``gittree.remove_tree`` walks relative to each folder and climbs back through ``..``: a folder
moved out of the tree while it is being deleted must stop the walk (an OSError), never take it
into the folder the moved one now sits in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources import gittree
from tests.sources.test_git_deep_worktree import undeletable


def test_a_folder_moved_out_during_the_walk_stops_it_and_nothing_else_is_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    top = tmp_path / "tree"
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "x.yaml").write_text("x")
    (top / "a" / "y.yaml").write_text("y")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "kept").write_text("kept")
    deepest = os.stat(top / "a" / "b").st_ino
    scan = gittree._unlink_files_until_folder

    def moving(fd: int, *more: Any) -> str | None:
        # When the walk reaches b, a is moved out of the tree (as another process could).
        if os.fstat(fd).st_ino == deepest and (top / "a").exists():
            os.rename(top / "a", elsewhere / "a")
        return scan(fd, *more)

    monkeypatch.setattr(gittree, "_unlink_files_until_folder", moving)
    with pytest.raises(OSError, match="moved while its tree was being deleted"):
        gittree.remove_tree(top)
    assert (elsewhere / "kept").read_text() == "kept"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["a", "kept"]
    assert top.is_dir()


def test_an_error_names_the_entry_not_the_whole_path(tmp_path: Path) -> None:
    top = tmp_path / "tree"
    folder = top / ("d" * 200) / ("e" * 200)
    folder.mkdir(parents=True)
    stuck = folder / "stuck.yaml"
    stuck.write_text("x")
    with undeletable(stuck), pytest.raises(OSError, match=r"stuck\.yaml") as raised:
        gittree.remove_tree(top)
    assert raised.value.filename == "stuck.yaml"
    assert "d" * 200 not in str(raised.value)
