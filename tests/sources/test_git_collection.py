"""git's automatic collection keeps the state directory's repository from growing without bound,
also after a git was killed in the middle of it (the fetch's timeout, a shutdown's cancel, the
OOM killer), which leaves locks that made every later collection do nothing; and a collection
that fails is logged, never a failure of the sync.

A small repository with collection's thresholds lowered (more than 2 packs, every fetch keeping
its pack) stands in for a large one."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
from pathlib import Path

import pytest

from reconciler.sources.git import GitSource
from tests.sources.test_git import (
    Clock,
    Remote,
    doc,
    git,
    isolate_git,
    source_for,
    synced,
)


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def first_sync(remote: Remote, tmp_path: Path, clock: Clock) -> tuple[GitSource, Path]:
    remote.write("a.yaml", doc("a"))
    remote.commit()
    source = source_for(remote, tmp_path / "state", clock)
    assert synced(source)
    repo = source.base / "repo.git"
    git("config", "gc.autoPackLimit", "2", cwd=repo)
    git("config", "fetch.unpackLimit", "1", cwd=repo)
    return source, repo


def packs(repo: Path) -> int:
    return len(list((repo / "objects" / "pack").glob("*.pack")))


def test_the_leftovers_of_a_git_killed_in_its_maintenance_do_not_stop_collection(
    remote: Remote, tmp_path: Path, clock: Clock
) -> None:
    source, repo = first_sync(remote, tmp_path, clock)
    # What a git killed in its automatic maintenance leaves: its locks, and gc.pid naming a
    # pid that lives on this host (reused since: git takes it for a gc that still runs).
    (repo / "objects" / "info" / "commit-graphs").mkdir(parents=True, exist_ok=True)
    leftovers = {
        repo / "objects" / "maintenance.lock": "",
        repo / "objects" / "info" / "commit-graph.lock": "",
        repo / "objects" / "info" / "commit-graphs" / "commit-graph-chain.lock": "",
        repo / "gc.pid": f"{os.getpid()} {socket.gethostname()}",
    }
    for path, text in leftovers.items():
        path.write_text(text)

    for n in range(3):  # the third is one pack more than collection lets be
        remote.write(f"t{n}.yaml", doc(f"t{n}"))
        remote.commit()
        assert synced(source)
        assert source.status().last_error is None
    assert [path for path in leftovers if path.exists()] == []
    assert packs(repo) == 1  # collected: without it, one pack per fetch


def test_a_collection_that_fails_is_logged_and_is_no_sync_failure(
    remote: Remote, tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    source, repo = first_sync(remote, tmp_path, clock)
    git("config", "gc.autoPackLimit", "many", cwd=repo)  # git gc fails on it; fetch never reads it
    caplog.set_level(logging.WARNING, logger="crontask.sources.git")
    remote.write("b.yaml", doc("b"))
    remote.commit()
    assert synced(source)
    status = source.status()
    assert (status.last_error, status.consecutive_failures) == (None, 0)
    (record,) = caplog.records
    assert record.getMessage() == "git collection failed"
    error = record.__dict__["fields"]["error"]
    assert error == "bad numeric config value 'many' for 'gc.autopacklimit': invalid unit"


def test_the_locks_of_a_collection_still_running_are_left_alone(
    remote: Remote, tmp_path: Path, clock: Clock
) -> None:
    """A collection an earlier crontask started outlives it when it is killed hard: while
    gc.pid names a git alive on this host, its locks are its own, and nothing is removed."""
    source, repo = first_sync(remote, tmp_path, clock)
    alive = subprocess.Popen(["git", "cat-file", "--batch"], stdin=subprocess.PIPE, cwd=repo)
    try:
        lock = repo / "objects" / "maintenance.lock"
        lock.write_text("")
        (repo / "gc.pid").write_text(f"{alive.pid} {socket.gethostname()}")
        remote.write("b.yaml", doc("b"))
        remote.commit()
        assert synced(source)
        assert lock.exists()
    finally:
        alive.communicate(b"")  # ends at the end of its input
    remote.write("c.yaml", doc("c"))
    remote.commit()
    assert synced(source)
    assert not lock.exists()  # its git is gone: a leftover now
