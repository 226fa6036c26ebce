"""A worktree an earlier process left half deleted (crontask killed with -9 while it deleted an
old revision: 232 MB seen) goes at the first sync after a restart, whether or not the remote
has anything new, or answers at all; the worktree in force is never touched. Real git; the
last test with the real ``crontask run``."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from reconciler.sources.git import GitSource
from tests.e2e.conftest import Crontask
from tests.helpers import wait_for
from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, source_for, synced

OLD = "0123456789abcdef0123456789abcdef01234567"  # the revision whose deletion was cut short


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def plant_cut_deletion(worktrees: Path) -> Path:
    """What a ``remove_tree`` killed part-way leaves: some files and folders of the tree (its
    ``.git`` file among those gone already)."""
    left = worktrees / OLD
    (left / "tasks" / "data").mkdir(parents=True)
    for i in range(20):
        (left / "tasks" / "data" / f"f{i}.txt").write_text("x" * 100)
    (left / "tasks" / "a.yaml").write_text(doc("a", "9 * * * *"))
    return left


def snapshot(tree: Path) -> dict[str, tuple[int, int, bytes]]:
    """Each file and folder of ``tree``: its inode, modification time and content."""
    return {
        str(p.relative_to(tree)): (
            p.lstat().st_ino,
            p.lstat().st_mtime_ns,
            p.read_bytes() if p.is_file() else b"",
        )
        for p in sorted(tree.rglob("*"))
    }


def applied(remote: Remote, state: Path, clock: Clock) -> GitSource:
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.commit()
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source), source.status().last_error
    return source


def test_a_restart_deletes_what_a_cut_deletion_left(tmp_path: Path) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    before = applied(remote, state, clock)
    sha = before.status().applied_revision
    assert sha is not None
    left = plant_cut_deletion(before.worktrees)
    in_force = snapshot(before.worktrees / sha)

    source = source_for(remote, state, clock, path="tasks")  # a restart, the remote unchanged
    assert source.status().applied_revision == sha
    assert synced(source) is False
    assert source.status().last_error is None
    assert not left.exists()
    assert sorted(p.name for p in source.worktrees.iterdir()) == [sha]
    assert snapshot(source.worktrees / sha) == in_force
    assert schedules(source) == {"default/a": "1 * * * *"}


def test_a_restart_whose_fetch_fails_deletes_it_too(tmp_path: Path) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    before = applied(remote, state, clock)
    sha = before.status().applied_revision
    assert sha is not None
    left = plant_cut_deletion(before.worktrees)
    in_force = snapshot(before.worktrees / sha)
    remote.bare.rename(tmp_path / "moved.git")  # the remote cannot be read

    source = source_for(remote, state, clock, path="tasks")
    assert synced(source) is False
    assert "fetch failed" in (source.status().last_error or "")
    assert not left.exists()
    assert snapshot(source.worktrees / sha) == in_force
    assert schedules(source) == {"default/a": "1 * * * *"}


@pytest.mark.slow  # two crontask starts; 10-14 s on a loaded machine
def test_crontask_run_deletes_it_after_a_restart(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    sha = remote.commit()
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    args = ["--git", remote.url, "--git-ref", "main", "--git-path", "tasks"]
    app = Crontask(tmp_path, tasks, [*args, "--git-interval", "1h"]).start()
    try:
        app.wait_log(f"revision={sha}")
    finally:
        app.stop(signal.SIGTERM)
    (worktrees,) = app.state.glob("git/*/worktrees")
    left = plant_cut_deletion(worktrees)
    in_force = snapshot(worktrees / sha)

    app.start()
    try:
        wait_for("the half-deleted worktree to go", lambda: not left.exists())
        assert sorted(p.name for p in worktrees.iterdir()) == [sha]
        assert snapshot(worktrees / sha) == in_force
        assert "git sync failed" not in app.log()
    finally:
        app.stop(signal.SIGTERM)
