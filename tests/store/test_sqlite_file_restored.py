"""Fault: the SQLite file deleted under a running writer, then a backup restored at its path.

A restored backup (``cp``: a new inode) was never taken: the store stayed unavailable, the
records waited until the stop and were lost with it. Now a writer takes the file found at the
path once it is a regular file of this user's holding a store of a schema this crontask runs
on (the checks of a start), says so in one line, and the records waiting are written, a record
whose claim the backup does not hold included. A file that fails a check is said once, not
taken, and not changed: the records keep waiting. Nor is a file taken while another process
has the old one open, or has left a -wal of it at the path (SQLite would apply it to the
backup), nor through a connection that SQLite opened on something else at the path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunStatus
from reconciler.store import (
    StoreUnavailable,
    migrations,
    open_store,
    sql_sqlite_holders,
    sqlite_url,
)
from reconciler.store.sql import SqlRunStore, create_engine
from tests.store._records import rec
from tests.store.test_damaged_store import overwrite, root_pages

OLDER = "0005"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def store(state: Path) -> Iterator[SqlRunStore]:
    opened = open_store(sqlite_url(state), writer=True)
    assert isinstance(opened, SqlRunStore)
    opened.claim(rec(at=0, status=RunStatus.RUNNING))  # in the backup, ended after it
    yield opened
    opened.close()


def backup(db: Path, to: Path) -> None:
    """SQLite's online backup, as an operator takes one of a live store."""
    source, copy = sqlite3.connect(db), sqlite3.connect(to)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()


def remove(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)


def restore(saved: Path, db: Path, mode: int = 0o600) -> None:
    shutil.copyfile(saved, db)  # a new inode, as `cp` makes
    os.chmod(db, mode)


def gone(store: SqlRunStore, db: Path, saved: Path) -> None:
    """The backup taken, the file removed, and the store found unavailable."""
    backup(db, saved)
    remove(db)
    with pytest.raises(StoreUnavailable):
        store.claim_many([rec(at=9, status=RunStatus.RUNNING)])


def said(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]


def test_a_restored_backup_is_taken_and_the_waiting_records_written(
    store: SqlRunStore, state: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = state / "runs.db"
    gone(store, db, tmp_path / "backup.db")

    async def main() -> None:
        recorder = Recorder(store, retry_initial=0.01, retry_max=0.02)
        # A run begun while the file was gone (its claim is in no file), and one that ended.
        assert await recorder.claim(rec(at=1, status=RunStatus.RUNNING)) is False
        assert await recorder.save(rec(at=1)) is False
        assert await recorder.save(rec(at=0)) is False
        assert recorder.pending == 2
        restore(tmp_path / "backup.db", db)
        assert await recorder.flush(20) is True
        assert recorder.dropped == 0
        await recorder.close(0)

    with caplog.at_level(logging.INFO, logger="crontask.store"):
        asyncio.run(main())
    assert store.get(rec(at=0).id) == rec(at=0)
    assert store.get(rec(at=1).id) == rec(at=1)
    back = [r for r in caplog.records if "run store file is back" in r.getMessage()]
    assert len(back) == 1, caplog.text
    assert back[0].getMessage().startswith("run store file is back (a different file)")
    assert back[0].__dict__["fields"]["path"] == str(db)
    # The file taken is the one at the path: a restart reads the same history.
    store.close()
    again = open_store(sqlite_url(state), existing=True)
    try:
        assert again.get(rec(at=1).id) == rec(at=1)
    finally:
        again.close()


def test_a_file_removed_again_after_the_restore_is_said_again(
    store: SqlRunStore, state: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = state / "runs.db"
    with caplog.at_level(logging.INFO, logger="crontask.store"):
        gone(store, db, tmp_path / "backup.db")
        restore(tmp_path / "backup.db", db)
        assert store.claim_many([rec(at=2, status=RunStatus.RUNNING)]) == [True]
        gone(store, db, tmp_path / "backup2.db")
    assert len(said(caplog, "was removed or replaced")) == 2, caplog.text


def _older(path: Path) -> None:
    engine = create_engine(sqlite_url(path.parent))
    try:
        with engine.connect() as conn, conn.begin():
            migrations.downgrade(conn, OLDER)
    finally:
        engine.dispose()


def _revision(path: Path) -> str | None:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def test_a_backup_of_an_older_schema_is_refused_once_and_left_as_it_is(
    store: SqlRunStore, state: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = state / "runs.db"
    gone(store, db, tmp_path / "backup.db")
    older = tmp_path / "older" / "runs.db"
    older.parent.mkdir(mode=0o700)
    shutil.copyfile(tmp_path / "backup.db", older)
    _older(older)
    restore(older, db)
    with caplog.at_level(logging.INFO, logger="crontask.store"):
        for _ in range(3):
            with pytest.raises(StoreUnavailable):
                store.claim_many([rec(at=1, status=RunStatus.RUNNING)])
    refused = said(caplog, "not taken for the run store")
    assert len(refused) == 1, caplog.text  # once, not at every try
    assert f"'{OLDER}', older than" in refused[0], refused
    assert str(db) in refused[0], refused
    assert not said(caplog, "is back")
    assert _revision(db) == OLDER  # not migrated under the operator
    # The right backup then put in its place is taken.
    remove(db)
    restore(tmp_path / "backup.db", db)
    assert store.claim_many([rec(at=1, status=RunStatus.RUNNING)]) == [True]


def test_a_damaged_backup_is_refused_once_and_a_good_one_then_taken(
    store: SqlRunStore, state: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its header and schema whole, its runs table damaged where the start and readiness read
    (the first entry): it was taken, and every claim after it failed, "its SQLite file is
    damaged ... stop crontask" (the records waiting lost at that stop)."""
    db = state / "runs.db"
    gone(store, db, tmp_path / "backup.db")
    damaged = tmp_path / "damaged" / "runs.db"
    damaged.parent.mkdir(mode=0o700)
    shutil.copyfile(tmp_path / "backup.db", damaged)
    with contextlib.closing(sqlite3.connect(damaged)) as conn:
        pages = root_pages(conn, ["runs"])
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    overwrite(damaged, pages, page_size)
    restore(damaged, db)
    with caplog.at_level(logging.INFO, logger="crontask.store"):
        for _ in range(3):
            with pytest.raises(StoreUnavailable):
                store.claim_many([rec(at=1, status=RunStatus.RUNNING)])
        refused = said(caplog, "not taken for the run store")
        assert len(refused) == 1, caplog.text
        assert "the file is damaged (database disk image is malformed)" in refused[0], refused
        assert "put another backup in its place" in refused[0], refused
        assert not said(caplog, "is back")
        # Another backup put in its place, crontask running: taken, and written to.
        remove(db)
        restore(tmp_path / "backup.db", db)
        assert store.claim_many([rec(at=1, status=RunStatus.RUNNING)]) == [True]
    assert len(said(caplog, "run store file is back (a different file)")) == 1, caplog.text


@pytest.mark.parametrize(
    "put",
    ["symlink", "foreign", "empty", "not-ours", "hard-link"],
)
def test_a_file_that_fails_a_check_is_not_taken_nor_changed(
    put: str,
    store: SqlRunStore,
    state: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = state / "runs.db"
    saved = tmp_path / "backup.db"
    gone(store, db, saved)
    why = {
        "symlink": "symbolic link",
        "foreign": "not a crontask run store",
        "empty": "no run store in that database",
        "not-ours": "owned by uid 4242",
        # The backup itself, by a second name (ln): as refused at start, since crontask would
        # write into the backup, and another crontask by its name over its runs.
        "hard-link": "it has 2 names (hard links)",
    }[put]
    if put == "symlink":
        db.symlink_to(saved)
    elif put == "foreign":
        with sqlite3.connect(db) as other:
            other.execute("CREATE TABLE runs (x)")  # another program's file
        db.chmod(0o600)
    elif put == "empty":
        db.touch(0o600)
    elif put == "hard-link":
        saved.chmod(0o600)
        os.link(saved, db)
    else:
        if os.geteuid() != 0:
            pytest.skip("giving a file to another user needs root")
        restore(saved, db)
        os.chown(db, 4242, -1)
    before = db.read_bytes()
    with caplog.at_level(logging.INFO, logger="crontask.store"):
        for _ in range(3):
            with pytest.raises(StoreUnavailable):
                store.claim_many([rec(at=1, status=RunStatus.RUNNING)])
    refused = said(caplog, "not taken for the run store")
    assert len(refused) == 1, caplog.text
    assert why in refused[0], refused
    assert db.read_bytes() == before
    assert not said(caplog, "is back")


def test_a_restored_file_others_may_read_is_made_private_and_taken(
    store: SqlRunStore, state: Path, tmp_path: Path
) -> None:
    db = state / "runs.db"
    gone(store, db, tmp_path / "backup.db")
    restore(tmp_path / "backup.db", db, mode=0o666)  # a `cp` under a umask of 0
    assert store.claim_many([rec(at=1, status=RunStatus.RUNNING)]) == [True]
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_a_reader_never_takes_another_file(state: Path, tmp_path: Path) -> None:
    open_store(sqlite_url(state), writer=True).close()
    reader = open_store(sqlite_url(state), existing=True)
    try:
        db = state / "runs.db"
        backup(db, tmp_path / "backup.db")
        remove(db)
        restore(tmp_path / "backup.db", db)
        with pytest.raises(StoreUnavailable, match="removed or replaced"):
            reader.get(rec(at=0).id)
    finally:
        reader.close()


def test_the_file_itself_moved_back_is_taken_and_said_so(
    store: SqlRunStore, state: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = state / "runs.db"
    aside = state / "aside.db"
    with caplog.at_level(logging.INFO, logger="crontask.store"):
        db.rename(aside)
        with pytest.raises(StoreUnavailable):
            store.claim_many([rec(at=1, status=RunStatus.RUNNING)])
        aside.rename(db)  # `mv` back: the same inode
        assert store.claim_many([rec(at=1, status=RunStatus.RUNNING)]) == [True]
    back = said(caplog, "run store file is back")
    assert back == ["run store file is back: the records waiting are written to it"], back
    assert store.get(rec(at=0).id) is not None


# Another process on the old file (a sqlite3 shell, a second crontask on the --db): its writes
# stay in the -wal at the path (no checkpoint: wal_autocheckpoint=0), and are not the backup's.
_HOLDER = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA wal_autocheckpoint=0")
conn.execute("UPDATE runs SET status = 'failed'")
print("written", flush=True)
sys.stdin.read()
"""


def _other_process(script: str, db: Path) -> subprocess.Popen[str]:
    """Another process running ``script`` on ``db``, once it has written: it keeps the file
    open until its stdin is closed (``communicate``)."""
    other = subprocess.Popen(
        [sys.executable, "-c", script, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert other.stdout is not None
    if (said := other.stdout.readline()) != "written\n":
        other.communicate("")
        raise AssertionError(f"the other process did not write: {said!r}")
    return other


def _statuses(db: Path) -> list[tuple[str, int]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall()


def test_a_backup_waits_for_another_process_on_the_old_file_and_its_wal(
    store: SqlRunStore, state: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db, saved = state / "runs.db", tmp_path / "backup.db"
    backup(db, saved)
    holder = _other_process(_HOLDER, db)
    try:
        db.unlink()  # the operator's rm: the -wal and -shm stay, the other process has them
        with pytest.raises(StoreUnavailable):
            store.claim_many([rec(at=9, status=RunStatus.RUNNING)])
        restore(saved, db)
        with caplog.at_level(logging.INFO, logger="crontask.store"):
            for _ in range(2):
                with pytest.raises(StoreUnavailable):
                    store.claim_many([rec(at=1, status=RunStatus.RUNNING)])
    finally:
        holder.communicate("")
    refused = said(caplog, "not taken for the run store")
    assert refused == [
        f"a file is at {db} again, not taken for the run store: the old file is still open in"
        f" process {holder.pid}: stop it (what it writes to runs.db-wal would be applied to"
        " this file); the records keep waiting"
    ], refused
    # Stopped, it left its -wal at the path (SQLite removes it only for a file still there).
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="crontask.store"), pytest.raises(StoreUnavailable):
        store.claim_many([rec(at=1, status=RunStatus.RUNNING)])
    refused = said(caplog, "not taken for the run store")
    assert len(refused) == 1, caplog.text
    assert "runs.db-wal is not empty" in refused[0], refused
    for side in ("-wal", "-shm"):
        db.with_name(db.name + side).unlink()  # as the line says
    assert store.claim_many([rec(at=1, status=RunStatus.RUNNING)]) == [True]
    assert store.get(rec(at=0).id) == rec(at=0, status=RunStatus.RUNNING)  # the backup's row
    store.close()
    assert _statuses(db) == [("running", 2)]


def test_no_proc_is_said_and_the_file_not_taken(
    store: SqlRunStore,
    state: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = state / "runs.db"
    gone(store, db, tmp_path / "backup.db")
    restore(tmp_path / "backup.db", db)
    monkeypatch.setattr(sql_sqlite_holders, "_PROC", tmp_path / "no-proc")
    with caplog.at_level(logging.INFO, logger="crontask.store"), pytest.raises(StoreUnavailable):
        store.claim_many([rec(at=1, status=RunStatus.RUNNING)])
    refused = said(caplog, "not taken for the run store")
    assert len(refused) == 1, caplog.text
    assert "cannot tell whether the old file is still open (no /proc)" in refused[0], refused


def test_a_connection_opened_on_another_file_at_the_path_is_never_used(
    store: SqlRunStore, state: Path, tmp_path: Path
) -> None:
    db, saved = state / "runs.db", tmp_path / "backup.db"
    gone(store, db, saved)
    victim = tmp_path / "victim.db"  # any file of the user's that SQLite opens rw
    shutil.copyfile(saved, victim)
    db.symlink_to(victim)
    staged = state / "staged.db"
    restore(saved, staged)

    def swap(_conn: object, _record: object) -> None:
        # A good file renamed in after SQLite opened the link, before the store looks.
        if staged.exists():
            os.replace(staged, db)

    event.listen(store.engine, "connect", swap, insert=True)
    with pytest.raises(StoreUnavailable):
        store.claim_many([rec(at=1, status=RunStatus.RUNNING)])
    event.remove(store.engine, "connect", swap)
    assert _statuses(victim) == [("running", 1)]
    db.unlink()
    restore(saved, db)
    assert store.claim_many([rec(at=1, status=RunStatus.RUNNING)]) == [True]
    assert _statuses(victim) == [("running", 1)]
    assert store.get(rec(at=1).id) is not None


def test_a_closed_store_lets_its_file_go(store: SqlRunStore, state: Path) -> None:
    db = state / "runs.db"
    store.close()
    mine = os.stat(db)
    fds = Path("/proc/self/fd")
    held = [fd for fd in fds.iterdir() if _same(fd, mine)]
    assert held == []  # a file removed now frees its space


def _same(fd: Path, st: os.stat_result) -> bool:
    try:
        return os.path.samestat(os.stat(fd), st)
    except OSError:
        return False


_TAKER = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA wal_autocheckpoint=0")
conn.execute("UPDATE runs SET output = 'written by the other'")
print("written", flush=True)
sys.stdin.read()
"""


def test_a_backup_another_process_took_already_is_taken_with_its_wal(
    store: SqlRunStore, state: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two crontasks on one ``--db``: the other took the restored file first, and its -wal and
    -shm at the path are that file's, in use. They were taken for the old file's: refused
    ("still open in process", then "runs.db-wal is not empty ... move it away", which lost
    the other's records when followed). Now the file is taken, and the other's rows read."""
    db = state / "runs.db"
    gone(store, db, tmp_path / "backup.db")
    restore(tmp_path / "backup.db", db)
    taker = _other_process(_TAKER, db)
    try:
        assert os.stat(db.with_name("runs.db-wal")).st_size > 0
        with caplog.at_level(logging.INFO, logger="crontask.store"):
            assert store.claim_many([rec(at=1, status=RunStatus.RUNNING)]) == [True]
        assert said(caplog, "not taken for the run store") == [], caplog.text
        found = store.get(rec(at=0).id)
        assert found is not None
        assert found.output == "written by the other"
    finally:
        taker.communicate("")
