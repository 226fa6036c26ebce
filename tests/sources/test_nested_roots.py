"""A folder given under another one, through a link (``tasks/shared -> ../shared``), is a
root of its own, whatever order the two are given in (``sources.rootpaths``): it is read, its
links are confined to it, not to the outer folder, the outer folder does not report the link
as not entered, and each file's tasks are counted and held by that root alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sources.files import DirectorySource
from tests.controller.test_reconcile import doc

ORDERS = [("tasks", "tasks/shared"), ("tasks/shared", "tasks")]


@pytest.fixture
def nest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tasks/main.yaml, and tasks/shared -> ../shared holding s.yaml; the roots are given
    relative to ``tmp_path``, as a user types them."""
    (tmp_path / "tasks").mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "tasks" / "main.yaml").write_text(doc("main"))
    (tmp_path / "shared" / "s.yaml").write_text(doc("shared"))
    (tmp_path / "tasks" / "shared").symlink_to(Path("..") / "shared")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def keys(source: DirectorySource) -> set[str]:
    return {d.key for d in source.definitions()}


def problems(source: DirectorySource) -> list[tuple[str, str]]:
    return sorted((e.location.path, e.message) for e in source.errors())


@pytest.mark.parametrize("order", ORDERS)
def test_validate_reads_both_folders_in_either_order(nest: Path, order: tuple[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", *order],
        cwd=nest,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == "ok: 2 files, 2 tasks\n"


@pytest.mark.parametrize("order", ORDERS)
def test_the_folder_source_of_run_has_both_tasks(nest: Path, order: tuple[str, str]) -> None:
    source = DirectorySource([Path(p) for p in order], guard_empty=True)
    present, unread = source.scan()
    assert present == [Path("tasks/main.yaml"), Path("tasks/shared/s.yaml")]
    assert unread == []
    assert source.refresh(None) == {"default/main", "default/shared"}
    assert keys(source) == {"default/main", "default/shared"}
    assert problems(source) == []


@pytest.mark.parametrize("order", ORDERS)
def test_a_file_given_through_the_link_is_read(nest: Path, order: tuple[str, str]) -> None:
    outer, inner = order
    roots = [Path(p if p == "tasks" else "tasks/shared/s.yaml") for p in (outer, inner)]
    source = DirectorySource(roots)
    source.refresh(None)
    assert keys(source) == {"default/main", "default/shared"}
    # The rest of the linked folder is not read, and is said so; the file given is read.
    not_entered = (
        "a symbolic link to a folder outside this path, or to nothing: not entered; the "
        "tasks of files once here are kept"
    )
    assert problems(source) == [("tasks/shared", not_entered)]


@pytest.mark.parametrize("order", ORDERS)
def test_the_linked_folder_emptied_holds_its_own_task(nest: Path, order: tuple[str, str]) -> None:
    source = DirectorySource([Path(p) for p in order], guard_empty=True)
    source.refresh(None)
    (nest / "shared" / "s.yaml").unlink()
    # Whether a rescan or the watcher's event tells it, the inner root is the file's root.
    for hints in (None, {str(nest / "tasks" / "shared" / "s.yaml")}):
        assert source.refresh(hints) == set()
        assert keys(source) == {"default/main", "default/shared"}
        held = "no task file here any more: keeping its task (an unmounted volume or a folder "
        held += "moved away?); --allow-empty lets an empty folder remove them"
        assert problems(source) == [("tasks/shared", held)]


@pytest.mark.parametrize("order", ORDERS)
def test_each_task_is_kept_once_when_both_are_gone(nest: Path, order: tuple[str, str]) -> None:
    source = DirectorySource([Path(p) for p in order], guard_empty=True)
    source.refresh(None)
    shutil.move(nest / "tasks", nest / "tasks.moved")
    assert source.refresh(None) == set()
    assert keys(source) == {"default/main", "default/shared"}
    gone = (
        "no task file here any more: keeping its task: path does not exist; it stays until "
        "it is back"
    )
    # One task each: the outer folder does not count the inner folder's task as its own.
    assert problems(source) == [("tasks", gone), ("tasks/shared", gone)]
