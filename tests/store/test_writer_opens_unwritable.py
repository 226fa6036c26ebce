"""``crontask run`` opens its store while the store cannot take a write now: it opens anyway.

A writer's open compiles the claim and save statements in a write transaction it rolls back
(the first burst of runs must not pay for the compilation). That transaction was the open's:
behind another session's ``LOCK TABLE runs`` on PostgreSQL it waited for ever (its lock_timeout
was set to none), on a read-only PostgreSQL it failed at once, behind another process's SQLite
write lock it waited the busy timeout (30 s) and failed; either way crontask did not start,
where the README promises it starts and its records wait. The warm-up now waits at most a
run's write lock wait and a failure of it is one line in the log: the statements are compiled
by the first write instead.

Each test holds the lock until the open has returned, or until the open's deadline has passed
(then the test fails, and lets go so that the open ends).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from reconciler.core.runs import RunStatus
from reconciler.store import DB_FILENAME, RunStore, StoreUnavailable, open_store, sqlite_url
from tests.e2e.conftest import Crontask, stop_all
from tests.e2e.test_run import append, lines, task
from tests.helpers import wait_for

from ._records import rec
from .conftest import PG_ENV

# Seconds an open may take while the lock is held: well past a run's lock wait (2 s), well short
# of SQLite's busy timeout (30 s), after which the open failed.
OPEN_WITHIN = 20.0
HOLD_AT_MOST = 60.0  # seconds: the holder lets go by itself, so a broken test cannot hang
TASK = "ops/nightly-backup"
WARNING = "run store writes not compiled at start"

# Holds SQLite's write lock on the file argv[1] until a line comes on stdin (or HOLD_AT_MOST).
_HOLDER = f"""
import select, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
select.select([sys.stdin], [], [], {HOLD_AT_MOST})
conn.execute("ROLLBACK")
"""


def _hold(db: Path) -> subprocess.Popen[str]:
    """Another process holding SQLite's write lock on ``db`` (until a line on its stdin)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "held\n"
    return holder


def _let_go(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    if holder.poll() is None:
        holder.stdin.write("go\n")
        holder.stdin.flush()
    holder.wait(timeout=HOLD_AT_MOST)


def _end(holder: subprocess.Popen[str]) -> None:
    holder.kill()
    holder.wait()
    for pipe in (holder.stdin, holder.stdout):
        if pipe is not None:
            pipe.close()


def _open_while_held(url: str, release: Callable[[], None]) -> RunStore:
    """The writer's open of ``url``, which must return while the lock is still held."""
    with ThreadPoolExecutor(1) as pool:
        opening = pool.submit(open_store, url, writer=True)
        try:
            return opening.result(timeout=OPEN_WITHIN)
        finally:
            release()


def _said_once(caplog: pytest.LogCaptureFixture) -> None:
    """The warm-up's failure is one warning, without a traceback."""
    said = [r for r in caplog.records if WARNING in r.getMessage()]
    assert len(said) == 1
    assert said[0].levelno == logging.WARNING
    assert said[0].exc_info is None


def test_sqlite_a_writer_opens_while_another_process_holds_the_write_lock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = sqlite_url(tmp_path)
    open_store(url, writer=True).close()  # the file exists, migrated
    holder = _hold(tmp_path / DB_FILENAME)
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.store"):
            store = _open_while_held(url, lambda: _let_go(holder))
    finally:
        _end(holder)
    try:
        _said_once(caplog)
        # The lock let go, the first write compiles what the warm-up could not, and works.
        assert store.claim_many([rec(TASK, 0, RunStatus.RUNNING)]) == [True]
        store.save_many([rec(TASK, 0)])
        assert store.get(rec(TASK, 0).id) == rec(TASK, 0)
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_a_writer_opens_while_another_session_locks_the_runs_table(
    pg_url: str, open_many: Callable[..., RunStore], caplog: pytest.LogCaptureFixture
) -> None:
    first = open_many(pg_url)  # migrated
    first.save_many([rec(TASK, 0)])
    other = sa.create_engine(pg_url)
    try:
        with other.connect() as conn:
            # As VACUUM FULL, REINDEX or a newer replica's migration would hold it.
            conn.execute(sa.text("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE"))
            with caplog.at_level(logging.WARNING, logger="crontask.store"):
                store = _open_while_held(pg_url, conn.rollback)
    finally:
        other.dispose()
    try:
        _said_once(caplog)
        assert store.claim_many([rec(TASK, 1, RunStatus.RUNNING)]) == [True]
        assert store.get(rec(TASK, 0).id) == rec(TASK, 0)
    finally:
        store.close()


@pytest.fixture
def db(pg_admin: Engine) -> Iterator[str]:
    """The URL of a fresh database, dropped afterwards: read-only is a database's setting."""
    name = f"crontask_ro_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield make_url(os.environ[PG_ENV]).set(database=name).render_as_string(hide_password=False)
    with pg_admin.connect() as conn:
        _end_sessions(conn, name)
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))


def _end_sessions(conn: sa.Connection, name: str) -> None:
    conn.execute(
        sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = :db AND pid <> pg_backend_pid()"
        ),
        {"db": name},
    )


def _read_only(pg_admin: Engine, url: str, on: bool) -> None:
    name = make_url(url).database
    assert name is not None
    with pg_admin.connect() as conn:
        value = "on" if on else "off"
        conn.execute(
            sa.text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {value}')
        )
        _end_sessions(conn, name)  # as a failover ends them


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_a_writer_opens_a_read_only_database(
    db: str, pg_admin: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A standby after a failover, or default_transaction_read_only: crontask starts, readiness
    says the store takes no writes, and the writes go through once it takes them again."""
    open_store(db, writer=True).close()  # migrated while writable
    _read_only(pg_admin, db, True)
    with caplog.at_level(logging.WARNING, logger="crontask.store"):
        store = open_store(db, writer=True)
    try:
        _said_once(caplog)
        with pytest.raises(StoreUnavailable, match="takes no writes"):
            store.ping()
        _read_only(pg_admin, db, False)
        store.ping()
        assert store.claim_many([rec(TASK, 0, RunStatus.RUNNING)]) == [True]
    finally:
        store.close()


@pytest.mark.slow
def test_crontask_run_starts_and_runs_while_another_process_holds_the_write_lock(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Through the real ``crontask run``: it starts (it did not: 30 s, then exit 1), its API
    answers and its task runs while the lock is held, and the records are written once the
    lock is gone."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tick.yaml").write_text(task("tick", append(str(tmp_path / "tick.txt"))))
    first = Crontask(tmp_path, tasks, [])
    started = [first]
    try:
        first.start()
        first.stop()  # the store made and migrated
        ran = len(lines(tmp_path / "tick.txt"))
        holder = _hold(first.state / DB_FILENAME)
        try:
            app = Crontask(tmp_path, tasks, [])
            started.append(app)
            app.start()  # fails unless "crontask started" is logged while the lock is held
            assert httpx.get(f"{app.server}/healthz", timeout=10).status_code == 200
            wait_for(
                "a run while the lock is held", lambda: len(lines(tmp_path / "tick.txt")) > ran
            )
            assert holder.poll() is None  # all of it with the lock still held
            _let_go(holder)
        finally:
            _end(holder)
        assert WARNING in app.log()
        theirs = {line.split()[0] for line in lines(tmp_path / "tick.txt")[ran:]}

        def recorded() -> bool:
            return bool(theirs & {r.id for r in app.runs()})

        wait_for("the runs recorded once the lock is gone", recorded)
    finally:
        stop_all(started, request)
