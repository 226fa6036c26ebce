"""The state directory's rules (``reconciler.statedir``), through the run store that follows
them: what is created is private, what another user could have placed is refused, and a
reader changes nothing. Tests run as root: "another user" is a folder chowned to nobody."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

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


@pytest.mark.parametrize("vanishes_at", [1, 2])
def test_a_side_file_another_process_removes_while_it_is_checked_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vanishes_at: int
) -> None:
    """Another process's SQLite removes its ``-journal`` when its transaction ends, at any
    moment of the check (a CI run saw it go between a look and the ``lstat``): here it goes
    just before the first or the second look at it (``lstat``, ``chmod``)."""
    db = tmp_path / "runs.db"
    db.touch(mode=0o644)
    journal = db.with_name("runs.db-journal")
    journal.touch(mode=0o644)
    looks = 0

    def racing(real: Callable[..., object]) -> Callable[..., object]:
        def call(path: str | Path, *args: object) -> object:
            nonlocal looks
            if Path(path) == journal:
                looks += 1
                if looks == vanishes_at:
                    journal.unlink()  # that transaction ends now
            return real(path, *args)

        return call

    monkeypatch.setattr(os, "lstat", racing(os.lstat))
    monkeypatch.setattr(os, "chmod", racing(os.chmod))
    statedir.prepare_db(db)
    monkeypatch.undo()
    assert looks >= vanishes_at  # it did go while it was checked
    assert not journal.exists()
    assert mode(db) == 0o600


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
