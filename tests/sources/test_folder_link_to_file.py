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

from reconciler.sources import unread
from reconciler.sources.files import DirectorySource
from reconciler.sources.rootpaths import closest_root
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


@pytest.mark.parametrize("target", ["nothing", "other.yaml"])
def test_a_folder_named_as_a_task_file_turned_into_a_link_is_read_as_one(
    tmp_path: Path, target: str
) -> None:
    # The walk reads ``team.yaml`` as a task file, whatever it leads to: its errors are the
    # file's own. It was also said "a link to a file" (a link to nothing too), twice an error.
    root = tmp_path / "tasks"
    write(root / "other.yaml", doc("other"))
    write(root / "team.yaml" / "a.yaml", doc("a"))
    source = DirectorySource([root])
    source.refresh()
    shutil.rmtree(root / "team.yaml")
    (root / "team.yaml").symlink_to(target)
    source.refresh()
    messages = [e.message for e in source.errors() if e.location.path.startswith(str(root))]
    assert TO_FILE not in messages
    if target == "nothing":
        assert messages == ["a symbolic link to nothing: not read"]
    assert "default/a" not in keys(source)


def test_a_held_root_does_not_walk_each_folder_of_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While an emptied root is held, every refresh asks of each of its files' folders whether
    # a link stands where it was: one lstat finds it gone. Each asked the roots and walked
    # down from the one it is under, 130-170 ms a refresh for 10 000 files.
    root = tmp_path / "tasks"
    for n in range(50):
        write(root / f"team{n}" / "sub" / "a.yaml", doc(f"a{n}"))
    source = DirectorySource([root], guard_empty=True)
    source.refresh()
    for n in range(50):
        shutil.rmtree(root / f"team{n}")
    asked: list[Path] = []

    def counting(roots: list[Path], path: Path) -> Path | None:
        asked.append(path)
        return closest_root(roots, path)

    monkeypatch.setattr(unread, "closest_root", counting)
    source.refresh()
    source.refresh()
    assert len(keys(source)) == 50  # held: the root yields no task file now
    assert asked == []


def test_a_folder_moved_away_for_a_link_to_a_file_is_seen_from_its_hint(tmp_path: Path) -> None:
    # `mv team /elsewhere; ln -s notes.txt team`: the watcher names only ``team``, a file of no
    # interest now. It was taken for one, and the error waited for the next full resync.
    root = tmp_path / "tasks"
    write(root / "keep.yaml", doc("keep"))
    write(root / "notes.txt", "not a task\n")
    write(root / "team" / "a.yaml", doc("a"))
    source = DirectorySource([root])
    source.refresh()
    (root / "team").rename(tmp_path / "elsewhere")
    (root / "team").symlink_to("notes.txt")
    source.refresh({str(root.absolute() / "team")})
    assert [(e.location.path, e.message) for e in source.errors()] == [
        (str(root / "team"), TO_FILE)
    ]
    assert keys(source) == {"default/keep", "default/a"}


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
