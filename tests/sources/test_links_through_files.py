"""A task file replaced by a link whose target runs through a file (``link.yaml ->
notes.txt/x``, ``notes.txt`` a file) is a link to nothing, not a file gone: ``stat`` says
ENOTDIR of the target, and that was read as "no file here", which removed the file's task
without a word. So was a link into the worktree's ``.git``, a file there: ``../.git/config``
said no "leads to git's own .git". Real git and real files, as in test_git."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.sources.files import DirectorySource
from reconciler.sources.gitfiles import INTO_GIT
from tests.sources.test_files import keys, write
from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, source_for, synced

TO_NOTHING = "a symbolic link to nothing: not read"


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def test_a_git_task_file_turned_into_a_link_through_a_file_keeps_its_task(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.write("notes.txt", "x\n")
    remote.write("link.yaml", doc("link", "1 * * * *"))
    remote.write("keep.yaml", doc("keep", "2 * * * *"))
    remote.commit()
    source = source_for(remote, tmp_path / "state", Clock())
    assert synced(source)
    assert schedules(source) == {"default/link": "1 * * * *", "default/keep": "2 * * * *"}

    remote.rm("link.yaml")
    os.symlink("notes.txt/x", remote.work / "link.yaml")
    sha = remote.commit()
    assert synced(source)
    assert [str(e) for e in source.errors()] == [
        f"link.yaml:1:1: {TO_NOTHING} (revision {sha[:12]})"
    ]
    assert schedules(source) == {"default/link": "1 * * * *", "default/keep": "2 * * * *"}


def test_a_git_link_into_the_worktrees_dotgit_file_is_an_error_of_the_link(
    tmp_path: Path,
) -> None:
    remote = Remote(tmp_path)
    remote.write("tasks/gitcfg.yaml", doc("cfg", "1 * * * *"))
    remote.write("tasks/a.yaml", doc("a", "2 * * * *"))
    remote.commit()
    source = source_for(remote, tmp_path / "state", Clock(), path="tasks")
    assert synced(source)

    # The worktree's .git is a file ("gitdir: ..."): a path through it is ENOTDIR.
    remote.rm("tasks/gitcfg.yaml")
    os.symlink("../.git/config", remote.work / "tasks" / "gitcfg.yaml")
    sha = remote.commit()
    assert synced(source)
    assert [str(e) for e in source.errors()] == [
        f"tasks/gitcfg.yaml:1:1: {INTO_GIT} (revision {sha[:12]})"
    ]
    assert schedules(source) == {"default/cfg": "1 * * * *", "default/a": "2 * * * *"}


def test_a_folder_task_file_turned_into_a_link_through_a_file_keeps_its_task(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tasks"
    write(root / "notes.txt", "x\n")
    link = write(root / "link.yaml", doc("link", "1 * * * *"))
    write(root / "keep.yaml", doc("keep", "2 * * * *"))
    source = DirectorySource([root])
    assert source.refresh() == {"default/link", "default/keep"}

    link.unlink()
    os.symlink("notes.txt/x", link)
    # By a full rescan and by the watcher's event for the file alike.
    for hints in (None, [str(link)]):
        source.refresh(hints)
        assert [str(e) for e in source.errors()] == [f"{link}:1:1: {TO_NOTHING}"]
        assert keys(source) == {"default/link": "1 * * * *", "default/keep": "2 * * * *"}
