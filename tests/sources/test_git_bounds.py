"""A hostile commit: links out of the repository, an alias bomb, a file over the size limit.
Each is a definition error of its path, the tasks it defined keep their last good definition,
and nothing outside the worktree is ever read. Real git, as in test_git."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.sources.git import GitOptions, GitSource
from tests.sources.test_documents_bounds import sequence_bomb
from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, synced


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def test_a_link_out_of_the_repository_is_refused_and_one_inside_is_followed(
    tmp_path: Path,
) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    shadow = tmp_path / "shadow"
    shadow.write_text("root:$6$hash:19000:0:99999:7:::\n")
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.write("shared/b.yaml", doc("b"))
    remote.commit()
    source = GitSource(GitOptions(remote.url, path="tasks"), state, clock=clock)
    assert synced(source)

    # One commit: a.yaml becomes a link to a file of the host, and a link to another file of
    # the same commit (outside --git-path, inside the repository) appears.
    (remote.work / "tasks" / "a.yaml").unlink()
    os.symlink(shadow, remote.work / "tasks" / "a.yaml")
    os.symlink("../shared/b.yaml", remote.work / "tasks" / "b.yaml")
    # From <state>/git/<key>/worktrees/<sha>/tasks/ into crontask's own state directory.
    os.symlink("../../../repo.git/HEAD", remote.work / "tasks" / "state.yaml")
    sha = remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/a": "1 * * * *", "default/b": "* * * * *"}
    errors = sorted(str(e) for e in source.errors())
    message = "a symbolic link that leads outside the repository: not read"
    assert errors == [
        f"tasks/a.yaml:1:1: {message} (revision {sha[:12]})",
        f"tasks/state.yaml:1:1: {message} (revision {sha[:12]})",
    ]
    assert all("root:" not in e for e in errors)


def test_a_commit_with_an_alias_bomb_or_a_big_file_keeps_the_last_good_tasks(
    tmp_path: Path,
) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    remote.write("a.yaml", doc("a", "1 * * * *"))
    remote.write("b.yaml", doc("b", "2 * * * *"))
    remote.commit()
    source = GitSource(GitOptions(remote.url), state, clock=clock, max_file_size=4096)
    assert synced(source)
    remote.write("a.yaml", sequence_bomb().replace("name: bomb", "name: a"))
    remote.write("b.yaml", doc("b", "3 * * * *") + "#" * 5000 + "\n")
    remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/a": "1 * * * *", "default/b": "2 * * * *"}
    errors = sorted(e.message for e in source.errors())
    assert errors[0].startswith("YAML aliases expand this value to more than 10000 values")
    assert errors[1].startswith("file is 5")
    assert "over the limit of 4 KiB" in errors[1]
