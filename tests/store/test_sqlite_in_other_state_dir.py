"""A ``--db sqlite:///`` file that is another crontask's state directory's own ``runs.db``.

That crontask (started without ``--db``) prunes and recovers its store as its alone: the runs
and the missed-slot marks of tasks it does not declare go by age, so the crontask writing there
through ``--db`` loses the mark it counts its missed slots from when it was down (reproduced
with two real crontasks: a monthly task's missed slot was not caught up). The writer says so
as it opens the store; its own state directory's store, a shared file elsewhere and a reader
(``crontask runs``) say nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reconciler import statedir
from reconciler.store import open_store, sqlite_url

_WARNING = "another crontask's state directory"


def _state_dir(path: Path) -> Path:
    """A state directory as a crontask leaves it: made, its lock taken, then let go."""
    statedir.prepare(path)
    statedir.lock(path)
    statedir.unlock(path)
    return path


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and _WARNING in r.message]


def test_a_writer_on_another_state_directorys_store_is_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = _state_dir(tmp_path / "a")
    open_store(sqlite_url(other), writer=True).close()  # its crontask's store, made there
    caplog.clear()
    mine = tmp_path / "b"
    statedir.prepare(mine)
    statedir.lock(mine)
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.store"):
            open_store(sqlite_url(other), writer=True).close()
    finally:
        statedir.unlock(mine)
    (warning,) = _warnings(caplog)
    fields = warning.__dict__["fields"]
    assert fields == {
        "store": str(other.absolute() / "runs.db"),
        "state_dir": str(other.absolute()),
    }
    assert "prunes" in warning.message
    # As that crontask prunes since 5a62b87: as its alone only until it has seen this one beat.
    assert "until it has seen this crontask's heartbeat" in warning.message
    assert "--db" in warning.message  # what to do: one --db outside any state directory


def test_its_own_state_directory_a_shared_file_and_a_reader_are_not_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mine = tmp_path / "mine"
    statedir.prepare(mine)
    statedir.lock(mine)
    other = _state_dir(tmp_path / "other")
    open_store(sqlite_url(other), writer=True).close()
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    caplog.clear()
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.store"):
            open_store(sqlite_url(mine), writer=True).close()  # as `--db` of its own: held
            open_store(sqlite_url(shared), writer=True).close()  # no state directory there
            open_store(sqlite_url(other), existing=True).close()  # `crontask runs`
    finally:
        statedir.unlock(mine)
    assert _warnings(caplog) == []
