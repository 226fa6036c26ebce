"""Each folder guards its own tasks: a path that suddenly yields no file (an unmounted volume,
a folder moved away) keeps the tasks it defined, whatever other paths hold, and whether the
change arrives by a resync or by watch events file by file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.sources.files import DirectorySource
from tests.controller.test_reconcile import doc


def keys(source: DirectorySource) -> set[str]:
    return {d.key.partition("/")[2] for d in source.definitions()}


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "one.yaml").write_text(doc("one"))
    (a / "two.yaml").write_text(doc("two"))
    (b / "three.yaml").write_text(doc("three"))
    return a, b


def events(folder: Path, *names: str) -> set[str]:
    return {str((folder / n).absolute()) for n in names}


@pytest.mark.parametrize("by", ["events", "resync"])
def test_a_folder_moved_away_keeps_its_tasks(roots: tuple[Path, Path], by: str) -> None:
    a, b = roots
    source = DirectorySource([a, b], guard_empty=True)
    source.refresh(None)
    shutil.move(a, a.with_name("a.moved"))
    changed = source.refresh(events(a, "one.yaml", "two.yaml") if by == "events" else None)
    assert changed == set()
    assert keys(source) == {"one", "two", "three"}
    (error,) = source.errors()
    assert error.location.path == str(a)
    # A resync sees the path gone, an event the files gone and the path with them: in the same
    # words, so that neither is logged resolved when the other is logged.
    assert error.message == (
        "no task file here any more: keeping the 2 tasks it defined: path does not exist; "
        "they stay until it is back"
    )


@pytest.mark.parametrize("by", ["events", "resync"])
def test_an_emptied_folder_keeps_its_tasks_and_says_why(roots: tuple[Path, Path], by: str) -> None:
    a, b = roots
    source = DirectorySource([a, b], guard_empty=True)
    source.refresh(None)
    for path in a.iterdir():  # the mount point stays, its files are gone
        path.unlink()
    source.refresh(events(a, "one.yaml", "two.yaml") if by == "events" else None)
    assert keys(source) == {"one", "two", "three"}
    (error,) = source.errors()
    assert error.location.path == str(a)
    assert "no task file here any more: keeping the 2 tasks" in error.message
    assert "--allow-empty" in error.message


def test_the_other_folder_still_changes_normally(roots: tuple[Path, Path]) -> None:
    a, b = roots
    source = DirectorySource([a, b], guard_empty=True)
    source.refresh(None)
    (a / "two.yaml").unlink()  # a keeps a file: an ordinary removal
    (b / "three.yaml").unlink()  # b empties: held
    source.refresh(events(a, "two.yaml") | events(b, "three.yaml"))
    assert keys(source) == {"one", "three"}


def test_when_files_come_back_the_hold_ends(roots: tuple[Path, Path]) -> None:
    a, b = roots
    source = DirectorySource([a, b], guard_empty=True)
    source.refresh(None)
    for path in a.iterdir():
        path.unlink()
    source.refresh(events(a, "one.yaml", "two.yaml"))
    (a / "new.yaml").write_text(doc("new"))  # the volume is back, with other contents
    source.refresh(events(a, "new.yaml"))
    assert keys(source) == {"new", "three"}
    assert source.errors() == []


def test_without_the_guard_an_empty_folder_removes_its_tasks(roots: tuple[Path, Path]) -> None:
    a, b = roots
    source = DirectorySource([a, b], guard_empty=False)  # --allow-empty
    source.refresh(None)
    for path in a.iterdir():
        path.unlink()
    source.refresh(events(a, "one.yaml", "two.yaml"))
    assert keys(source) == {"three"}


def test_a_folder_replaced_by_a_file_keeps_its_tasks(tmp_path: Path) -> None:
    """A commit (or a careless mv) that turns tasks/ into a file named tasks: the file is read,
    and the tasks of the folder's files are held as for a folder gone."""
    root = tmp_path / "tasks"
    (root / "team").mkdir(parents=True)
    (root / "a.yaml").write_text(doc("a"))
    (root / "team" / "b.yaml").write_text(doc("b"))
    source = DirectorySource([root], guard_empty=True)
    source.refresh()
    (root / "a.yaml").unlink()
    (root / "team" / "b.yaml").unlink()
    (root / "team").rmdir()
    root.rmdir()
    root.write_text("just: notes\n")
    source.refresh()
    assert keys(source) == {"a", "b"}
    messages = sorted(e.message for e in source.errors())
    assert any(m.startswith("no task file here any more: keeping the 2 tasks") for m in messages)


def test_a_task_two_files_define_is_counted_once(tmp_path: Path) -> None:
    """The count is of tasks kept, as the plan lists them: a key two files of the folder define
    (one of them ignored as defined more than once) is one task, not two."""
    a = tmp_path / "a"
    a.mkdir()
    (a / "one.yaml").write_text(doc("one"))
    (a / "copy.yaml").write_text(doc("one"))
    (a / "two.yaml").write_text(doc("two"))
    source = DirectorySource([a], guard_empty=True)
    source.refresh(None)
    for path in a.iterdir():
        path.unlink()
    source.refresh(None)
    assert keys(source) == {"one", "two"}
    (error,) = source.errors()
    assert error.message.startswith("no task file here any more: keeping the 2 tasks it defined")
