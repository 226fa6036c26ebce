"""The tree in force, damaged on disk (a file emptied or gone: what a power loss can leave of a
checkout, which git never syncs to disk, or a hand in the state directory), is checked out
again from the mirror before a restart reads it: its tasks are never dropped until the next
push. A sound tree is not touched. Real git; the last test with the real ``crontask run``."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest

from reconciler.sources.git import GitSource
from tests.e2e.conftest import Crontask
from tests.sources.test_git import Clock, Remote, doc, isolate_git, schedules, source_for, synced

IN_FORCE = {"default/a": "1 * * * *", "default/b": "2 * * * *", "default/c": "3 * * * *"}


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def applied(remote: Remote, state: Path, clock: Clock) -> tuple[GitSource, Path]:
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.write("tasks/sub/b.yaml", doc("b", "2 * * * *"))
    remote.write("shared/c.yaml", doc("c", "3 * * * *"))
    os.symlink("../shared/c.yaml", remote.work / "tasks" / "c.yaml")
    sha = remote.commit()
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source), source.status().last_error
    assert schedules(source) == IN_FORCE
    return source, source.worktrees / sha


def restarted(remote: Remote, state: Path, clock: Clock) -> GitSource:
    """A new process on the same state directory, as ``crontask run`` starts it: the tree in
    force is read ahead, then the first pass reads it."""
    source = source_for(remote, state, clock, path="tasks")
    source.read_ahead(1)
    source.refresh()
    return source


def snapshot(tree: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(tree)): (p.lstat().st_ino, p.lstat().st_mtime_ns)
        for p in sorted(tree.rglob("*"))
    }


def test_a_damaged_tree_in_force_is_checked_out_again_before_it_is_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    _, tree = applied(remote, state, clock)
    (tree / "tasks" / "a.yaml").write_bytes(b"")  # emptied: a power loss after the switch
    (tree / "tasks" / "sub" / "b.yaml").unlink()
    (tree / "shared" / "c.yaml").unlink()  # what a link of the revision leads to
    remote.bare.rename(tmp_path / "moved.git")  # no fetch is needed: the mirror has it

    with caplog.at_level(logging.WARNING, logger="crontask.sources.git"):
        source = restarted(remote, state, clock)
    assert schedules(source) == IN_FORCE
    assert source.errors() == []
    said = [r for r in caplog.records if "checked out again" in r.getMessage()]
    assert len(said) == 1, caplog.text
    fields = said[0].__dict__["fields"]
    assert fields["differences"] == 3
    assert fields["paths"] == "shared/c.yaml, tasks/a.yaml, tasks/sub/b.yaml"
    assert sorted(p.name for p in source.worktrees.iterdir()) == [tree.name]


def test_a_sound_tree_in_force_is_not_touched(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    _, tree = applied(remote, state, clock)
    before = snapshot(tree)
    with caplog.at_level(logging.WARNING, logger="crontask.sources.git"):
        source = restarted(remote, state, clock)
    assert snapshot(tree) == before
    assert schedules(source) == IN_FORCE
    assert "checked out again" not in caplog.text


def test_a_tree_in_force_without_its_mirror_is_read_as_it_is(tmp_path: Path) -> None:
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    _, tree = applied(remote, state, clock)
    (tree / "tasks" / "a.yaml").write_bytes(b"")
    (tree.parent.parent / "repo.git" / "HEAD").unlink()  # nothing to check it against
    source = restarted(remote, state, clock)
    assert schedules(source) == {k: v for k, v in IN_FORCE.items() if k != "default/a"}


@pytest.mark.slow  # two crontask starts
def test_crontask_run_runs_the_tasks_of_a_damaged_tree_after_a_restart(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.write("tasks/b.yaml", doc("b", "2 * * * *"))
    sha = remote.commit()
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    args = ["--git", remote.url, "--git-ref", "main", "--git-path", "tasks"]
    app = Crontask(tmp_path, tasks, [*args, "--git-interval", "1h"]).start()
    try:
        app.wait_log(f"revision={sha}")
    finally:
        app.stop(signal.SIGTERM)
    (tree,) = app.state.glob(f"git/*/worktrees/{sha}")
    (tree / "tasks" / "b.yaml").write_bytes(b"")

    app.start()
    try:
        app.wait_log("checked out again")
        app.wait_log("crontask started")
        started = next(line for line in app.log().splitlines() if "crontask started" in line)
        assert "tasks=2" in started
    finally:
        app.stop(signal.SIGTERM)


def test_a_start_after_a_crash_mid_check_out_puts_the_tree_aside_back(tmp_path: Path) -> None:
    """Killed while the tree in force was set aside (``check_out_again``): the next start has it
    in force again, and checks it out anew, rather than starting with no revision in force
    (no task at all while the remote cannot be reached)."""
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    _, tree = applied(remote, state, clock)
    (tree / "tasks" / "a.yaml").write_bytes(b"")
    tree.rename(tree.with_name(f"{tree.name}.aside"))
    remote.bare.rename(tmp_path / "moved.git")

    source = restarted(remote, state, clock)
    assert source.status().revision == tree.name
    assert schedules(source) == IN_FORCE
    assert sorted(p.name for p in source.worktrees.iterdir()) == [tree.name]


def test_a_damaged_tree_is_checked_out_again_when_the_mirror_head_is_damaged_too(
    tmp_path: Path,
) -> None:
    """One power loss may leave both: the mirror's HEAD made readable first (see
    ``test_git_mirror_head_damaged``), then the tree checked against it."""
    remote, state, clock = Remote(tmp_path), tmp_path / "state", Clock()
    _, tree = applied(remote, state, clock)
    (tree / "tasks" / "a.yaml").write_bytes(b"")
    (tree.parent.parent / "repo.git" / "HEAD").write_bytes(b"")
    source = restarted(remote, state, clock)
    assert schedules(source) == IN_FORCE
