"""A link in a commit to the worktree's own ``.git`` leads to no file of the repository: that is
crontask's ``gitdir: <state_dir>/.../repo.git/worktrees/<sha>`` file, which confinement to the
worktree let through ("tasks/x.yaml:1:1: gitdir: unknown field"). It is an error of the link, as
one out of the repository is, and says nothing of the state directory. Real git, as in
test_git."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.sources.git import GitOptions, GitSource
from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, synced

INTO_GIT = "a symbolic link that leads to git's own .git, not a file of the repository: not read"


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def everything_said(source: GitSource) -> str:
    errors = [str(e) for e in source.errors()]
    return "\n".join(errors + [repr(d) for d in source.definitions()])


@pytest.mark.parametrize("target", ["../.git", "../tasks/../.git", "../alias"])
def test_a_link_to_the_worktrees_dotgit_is_an_error_of_the_link(
    target: str, tmp_path: Path
) -> None:
    remote, state = Remote(tmp_path), tmp_path / "state"
    remote.write("tasks/x.yaml", doc("x", "1 * * * *"))
    remote.write("tasks/a.yaml", doc("a", "2 * * * *"))
    os.symlink(".git", remote.work / "alias")  # a chain: tasks/x.yaml -> alias -> .git
    remote.commit()
    source = GitSource(GitOptions(remote.url, path="tasks"), state, clock=Clock())
    assert synced(source)
    assert schedules(source) == {"default/x": "1 * * * *", "default/a": "2 * * * *"}

    (remote.work / "tasks" / "x.yaml").unlink()
    os.symlink(target, remote.work / "tasks" / "x.yaml")
    sha = remote.commit()
    assert synced(source)
    assert [str(e) for e in source.errors()] == [
        f"tasks/x.yaml:1:1: {INTO_GIT} (revision {sha[:12]})"
    ]
    # The task of the link keeps its definition from the revision before, as for a broken file.
    assert schedules(source) == {"default/x": "1 * * * *", "default/a": "2 * * * *"}
    said = everything_said(source)
    assert "gitdir" not in said
    assert str(state) not in said
    assert "repo.git" not in said


def test_a_git_path_that_is_a_link_to_dotgit_is_not_read(tmp_path: Path) -> None:
    remote, state = Remote(tmp_path), tmp_path / "state"
    os.symlink(".git", remote.work / "tasks.yaml")
    sha = remote.commit()
    source = GitSource(GitOptions(remote.url, path="tasks.yaml"), state, clock=Clock())
    assert synced(source)
    assert schedules(source) == {}
    assert [str(e) for e in source.errors()] == [
        f"tasks.yaml:1:1: {INTO_GIT} (revision {sha[:12]})"
    ]
    assert "gitdir" not in everything_said(source)
