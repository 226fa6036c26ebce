"""A task folder turned into a symbolic link to a file (``team -> notes.txt``), or into another
link that is no folder. The walk saw a file of no interest there, and the files once under it
(``team/a.yaml`` now fails with ENOTDIR) read as gone: their tasks were removed without a word,
while a folder turned into a link to a folder elsewhere, or to nothing, keeps them (README: "a
commit that turns ``tasks/team`` into a link removes none of them"). It is an error of that
link, and the tasks of the files once under it are kept, in folder and in git mode."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from reconciler.sources.files import DirectorySource
from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, source_for, synced

TO_FILE = (
    "a symbolic link to a file, not a folder: not entered; the tasks of files once here are kept"
)


def keys(source: DirectorySource) -> set[str]:
    return {d.key for d in source.definitions()}


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize("target", ["notes.txt", "keep.yaml", "fifo"])
def test_a_folder_turned_into_a_link_to_a_file_keeps_its_tasks(tmp_path: Path, target: str) -> None:
    root = tmp_path / "tasks"
    write(root / "keep.yaml", doc("keep"))
    write(root / "notes.txt", "not a task\n")
    os.mkfifo(root / "fifo")
    write(root / "team" / "a.yaml", doc("a"))
    write(root / "team" / "deeper" / "b.yaml", doc("b"))
    source = DirectorySource([root])
    source.refresh()
    assert keys(source) == {"default/keep", "default/a", "default/b"}

    shutil.rmtree(root / "team")
    (root / "team").symlink_to(target)
    source.refresh()
    assert keys(source) == {"default/keep", "default/a", "default/b"}
    assert [(e.location.path, e.message) for e in source.errors()] == [
        (str(root / "team"), TO_FILE)
    ]
    assert source.unread == [root / "team"]

    # The link removed: the folder is gone, and so are its tasks, with the error.
    (root / "team").unlink()
    source.refresh()
    assert keys(source) == {"default/keep"}
    assert source.errors() == []


def test_a_link_to_a_file_where_no_task_was_says_nothing(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    write(root / "keep.yaml", doc("keep"))
    write(root / "notes.txt", "not a task\n")
    (root / "readme").symlink_to("notes.txt")
    source = DirectorySource([root])
    source.refresh()
    assert keys(source) == {"default/keep"}
    assert source.errors() == []


def test_a_deleted_folder_next_to_a_link_to_a_file_still_removes(tmp_path: Path) -> None:
    # Only the files under the link are kept: a folder removed beside it removes its tasks.
    root = tmp_path / "tasks"
    write(root / "team" / "a.yaml", doc("a"))
    write(root / "other" / "b.yaml", doc("b"))
    write(root / "notes.txt", "not a task\n")
    source = DirectorySource([root])
    source.refresh()
    shutil.rmtree(root / "team")
    shutil.rmtree(root / "other")
    (root / "team").symlink_to("notes.txt")
    source.refresh()
    assert keys(source) == {"default/a"}
    assert [e.location.path for e in source.errors()] == [str(root / "team")]


def test_the_folder_back_reads_its_files_again(tmp_path: Path) -> None:
    root = tmp_path / "tasks"
    write(root / "team" / "a.yaml", doc("a", "1 * * * *"))
    write(root / "notes.txt", "not a task\n")
    source = DirectorySource([root])
    source.refresh()
    shutil.rmtree(root / "team")
    (root / "team").symlink_to("notes.txt")
    source.refresh()
    (root / "team").unlink()
    write(root / "team" / "a.yaml", doc("a", "2 * * * *"))
    source.refresh()
    assert {d.key: d.task.spec.schedule for d in source.definitions()} == {"default/a": "2 * * * *"}
    assert source.errors() == []


@pytest.fixture
def git_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


@pytest.mark.usefixtures("git_env")
def test_a_commit_turning_a_folder_into_a_link_to_a_file_keeps_its_tasks(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.write("keep.yaml", doc("keep", "1 * * * *"))
    remote.write("notes.txt", "not a task\n")
    remote.write("team/a.yaml", doc("a", "2 * * * *"))
    remote.commit()
    source = source_for(remote, tmp_path / "state", Clock())
    assert synced(source)
    assert schedules(source) == {"default/keep": "1 * * * *", "default/a": "2 * * * *"}

    remote.rm("team")
    (remote.work / "team").symlink_to("notes.txt")
    sha = remote.commit()
    assert synced(source)
    assert [str(e) for e in source.errors()] == [f"team: {TO_FILE} (revision {sha[:12]})"]
    assert schedules(source) == {"default/keep": "1 * * * *", "default/a": "2 * * * *"}

    # A commit removing the link removes the tasks, and the error with them.
    remote.rm("team")
    remote.commit()
    assert synced(source)
    assert source.errors() == []
    assert schedules(source) == {"default/keep": "1 * * * *"}
