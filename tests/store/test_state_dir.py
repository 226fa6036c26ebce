"""The state directory's rules (``reconciler.statedir``), through the run store that follows
them: what is created is private, what another user could have placed is refused, and a
reader changes nothing. Tests run as root: "another user" is a folder chowned to nobody."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconciler import statedir
from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.store import RunQuery, StoreUnavailable, open_store, sqlite_url

NOBODY = 65534
# "Another user" is a folder chowned to nobody, which only root can do.
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    # What a user's shell has: without the fix, what crontask creates is readable by all.
    old = os.umask(0o022)
    yield
    os.umask(old)


def record(n: int = 0) -> RunRecord:
    return RunRecord(
        id=f"default.t.{n}",
        task="default/t",
        scheduled_at=datetime(2026, 11, 27, 1, n, tzinfo=UTC),
        trigger=Trigger.SCHEDULE,
        status=RunStatus.SUCCEEDED,
        output="token=hunter2",
    )


def test_what_the_store_creates_is_private(tmp_path: Path) -> None:
    state = tmp_path / "deep" / "state"
    store = open_store(sqlite_url(state), writer=True)
    try:
        store.save_many([record()])
        db = state / "runs.db"
        assert mode(tmp_path / "deep") == mode(state) == 0o700
        assert mode(db) == 0o600
        # SQLite gives its side files the database file's mode.
        side = [db.with_name(db.name + s) for s in ("-wal", "-shm")]
        assert all(p.exists() for p in side)
        assert [mode(p) for p in side] == [0o600, 0o600]
    finally:
        store.close()


def test_prepare_makes_the_state_directory_private_and_leaves_the_umask(tmp_path: Path) -> None:
    state = tmp_path / "a" / "state"
    statedir.prepare(state)
    assert mode(tmp_path / "a") == mode(state) == 0o700
    assert os.umask(0o022) == 0o022  # task commands inherit it: unchanged


def test_an_existing_state_directory_readable_by_others_is_made_private(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    (state / "git").mkdir(mode=0o755)
    db = state / "runs.db"
    db.touch(mode=0o644)
    wal = db.with_name("runs.db-wal")
    wal.touch(mode=0o644)
    with caplog.at_level(logging.WARNING, logger="crontask"):
        statedir.prepare(state)
        statedir.prepare_db(db)  # what opening the store does first
    assert (mode(state), mode(state / "git"), mode(db), mode(wal)) == (0o700, 0o700, 0o600, 0o600)
    # One line for the folders, one for the store's files, each saying what it changed.
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "state directory was readable by others: made private",
        "run store was readable by others: made private",
    ]
    assert warnings[1].fields == {"paths": f"{db} (0644), {wal} (0644)"}  # type: ignore[attr-defined]
    open_store(sqlite_url(state), writer=True).close()  # usable; nothing left to say
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


@pytest.mark.parametrize("vanishes_at", ["look", "chmod"])
def test_a_side_file_another_process_removes_while_it_is_checked_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vanishes_at: str
) -> None:
    """Another process's SQLite removes its ``-journal`` when its transaction ends, at any
    moment of the check (a CI run saw it go between a look and the next): here it goes just
    before it is first looked at, or once it has been checked, just before its ``chmod``."""
    db = tmp_path / "runs.db"
    db.touch(mode=0o644)
    journal = db.with_name("runs.db-journal")
    journal.touch(mode=0o644)
    gone = False
    real_chmod = os.chmod

    def looking(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(path: str | Path, *args: int) -> Any:
            nonlocal gone
            if vanishes_at == "look" and not gone and Path(path) == journal:
                journal.unlink()  # that transaction ends now
                gone = True
            return real(path, *args)

        return call

    def chmodding(path: str | Path, *args: int) -> None:
        nonlocal gone
        if vanishes_at == "chmod" and not gone and journal.exists() and mode(db) == 0o600:
            journal.unlink()  # the database file is done: the journal's turn
            gone = True
        real_chmod(path, *args)

    monkeypatch.setattr(os, "open", looking(os.open))
    monkeypatch.setattr(os, "lstat", looking(os.lstat))
    monkeypatch.setattr(os, "chmod", chmodding)
    statedir.prepare_db(db)
    monkeypatch.undo()
    assert gone  # it did go while it was checked
    assert not journal.exists()
    assert mode(db) == 0o600


def test_a_name_swapped_for_a_link_while_it_is_checked_does_not_turn_the_chmod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group crontask runs as may write the state directory (a pod's ``fsGroup``): a
    member could rename ``runs.db`` away and put a link to a file of crontask's user in its
    place after the check. The ``chmod`` must still reach the file that was checked."""
    db = tmp_path / "runs.db"
    db.touch(mode=0o644)
    victim = tmp_path / "elsewhere" / "shared.txt"
    victim.parent.mkdir()
    victim.touch(mode=0o644)
    moved = tmp_path / "runs.db.moved"
    real_chmod = os.chmod
    swaps = 0

    def swapping(path: str | Path, *args: int) -> None:
        nonlocal swaps
        if not swaps:
            db.rename(moved)
            db.symlink_to(victim)
            swaps += 1
        real_chmod(path, *args)

    monkeypatch.setattr(os, "chmod", swapping)
    statedir.prepare_db(db)
    monkeypatch.undo()
    assert swaps == 1
    assert (mode(victim), mode(moved)) == (0o644, 0o600)
    # The next check sees the link for what it is.
    with pytest.raises(statedir.Refused, match="symbolic link"):
        statedir.prepare_db(db)


@as_root
def test_a_state_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY, NOBODY)
    with pytest.raises(statedir.Refused, match="owned by uid 65534"):
        statedir.prepare(state)
    with pytest.raises(statedir.Refused, match="owned by uid 65534"):
        open_store(sqlite_url(state), writer=True)
    assert not (state / "runs.db").exists()
    assert mode(state) == 0o700


def test_a_state_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    with pytest.raises(statedir.Refused, match="group or others may write it"):
        statedir.prepare(state)
    with pytest.raises(statedir.Refused, match="group or others may write it"):
        open_store(sqlite_url(state), writer=True)
    assert mode(state) == 0o777  # refused, not changed


@as_root
def test_only_the_processs_own_group_may_write_the_state_directory(tmp_path: Path) -> None:
    """Kubernetes' fsGroup makes a pod's volume writable by the pod's group, again at every
    start on a PersistentVolume: that group is the process's own, and is accepted. Another
    group's write access is a way in for its members, and is refused."""
    ours = tmp_path / "ours"
    ours.mkdir(mode=0o700)
    ours.chmod(0o2770)  # what kubelet leaves: setgid, group rwx
    statedir.prepare(ours)
    assert mode(ours) == 0o700  # made private
    ours.chmod(0o2770)
    open_store(sqlite_url(ours), writer=True).close()

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    theirs.chmod(0o770)
    os.chown(theirs, os.geteuid(), NOBODY)
    with pytest.raises(statedir.Refused, match="group or others may write it"):
        statedir.prepare(theirs)


def test_a_state_directory_that_is_a_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "state").symlink_to(tmp_path / "real")
    with pytest.raises(statedir.Refused, match="symbolic link"):
        statedir.prepare(tmp_path / "state")


def test_a_runs_db_link_is_refused_not_followed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    target = tmp_path / "elsewhere" / "planted.db"
    target.parent.mkdir()
    (state / "runs.db").symlink_to(target)
    with pytest.raises(statedir.Refused, match="symbolic link"):
        open_store(sqlite_url(state), writer=True)
    assert not target.exists()
    assert sqlite_url(state).endswith(f"{state}/runs.db")  # the link is not resolved


@as_root
def test_a_runs_db_of_another_user_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    open_store(sqlite_url(state), writer=True).close()
    os.chown(state / "runs.db", NOBODY, NOBODY)
    with pytest.raises(statedir.Refused, match="owned by uid 65534"):
        open_store(sqlite_url(state), writer=True)


@as_root
def test_a_reader_reads_another_users_store_and_changes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = open_store(sqlite_url(state), writer=True)
    store.save_many([record()])
    store.close()
    for path in (state, *state.iterdir()):
        os.chown(path, NOBODY, NOBODY)
    state.chmod(0o755)
    (state / "runs.db").chmod(0o644)
    before = {p.name: (mode(p), os.lstat(p).st_uid) for p in state.iterdir()}

    reader = open_store(sqlite_url(state), existing=True)
    try:
        assert [r.id for r in reader.query(RunQuery()).items] == ["default.t.0"]
    finally:
        reader.close()
    assert mode(state) == 0o755
    assert {p.name: (mode(p), os.lstat(p).st_uid) for p in state.iterdir()} == before


def test_a_reader_creates_no_store(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="no run store"):
        open_store(sqlite_url(tmp_path / "none"), existing=True)
    assert not (tmp_path / "none").exists()


def test_a_fifo_in_place_of_the_runs_db_is_refused_without_waiting(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    os.mkfifo(db, 0o600)  # opening one to read would wait for a writer
    with pytest.raises(statedir.Refused, match="not a regular file"):
        statedir.prepare_db(db)


def test_checking_the_files_keeps_this_process_s_sqlite_locks(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops every POSIX lock the process holds on it, the
    ones SQLite holds through its own descriptors included: a check made while this process
    has the store open must not let another process write in the middle of its transaction."""
    db = tmp_path / "runs.db"
    statedir.prepare_db(db)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (1)")
        statedir.prepare_db(db)  # a second store opened by this process checks them again
        other = subprocess.run(
            [sys.executable, "-c", _WRITE_AT_ONCE, str(db)], capture_output=True, text=True
        )
        assert other.returncode == 1, other.stderr
        assert "database is locked" in other.stderr
        conn.execute("COMMIT")
    finally:
        conn.close()


_WRITE_AT_ONCE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    conn.execute("BEGIN IMMEDIATE")
except sqlite3.OperationalError as err:
    sys.exit(str(err))
"""


def test_without_proc_a_file_to_make_private_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "runs.db"
    db.touch(mode=0o644)

    def no_proc(path: str | Path, *args: int) -> None:
        raise FileNotFoundError(2, "No such file or directory", str(path))

    monkeypatch.setattr(os, "chmod", no_proc)  # what a chroot without /proc answers
    with pytest.raises(OSError, match=f"cannot make {db} private: /proc is not mounted"):
        statedir.prepare_db(db)
