"""A PostgreSQL server that cannot take writes for a while is an outage, not a refusal.

A failover that leaves the URL on a standby (or ``default_transaction_read_only``) answers every
write with SQLSTATE 25006, which psycopg raises as an ``InternalError``; a table dropped and
restored under crontask answers 42P01, privileges revoked 42501 (``ProgrammingError``). None of
these was :class:`StoreUnavailable`: every claim said "could not record run start", every save
logged a traceback, and the records were thrown away instead of waiting for the store to come
back. Each test gets a database of its own, as the read-only setting is a database's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunStatus
from reconciler.store import RunStore, StoreUnavailable
from reconciler.store.sql import SqlRunStore

from ._records import rec

pytestmark = pytest.mark.postgres

TASK = "ops/nightly-backup"


@pytest.fixture
def db(pg_admin: Engine) -> Iterator[str]:
    """The name of a fresh database, dropped afterwards."""
    name = f"crontask_ro_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield name
    with pg_admin.connect() as conn:
        _end_sessions(conn, name)
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))


def _end_sessions(conn: sa.Connection, name: str) -> None:
    # As a failover ends them: the pool's connections break, the next ones see the new setting.
    conn.execute(
        sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = :db AND pid <> pg_backend_pid()"
        ),
        {"db": name},
    )


def _read_only(pg_admin: Engine, name: str, on: bool, *, end_sessions: bool = True) -> None:
    with pg_admin.connect() as conn:
        value = "on" if on else "off"
        conn.execute(
            sa.text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {value}')
        )
        if end_sessions:
            _end_sessions(conn, name)


def _open(pg_admin: Engine, name: str, open_many: Callable[[str], RunStore]) -> SqlRunStore:
    url = make_url(pg_admin.url.render_as_string(hide_password=False)).set(database=name)
    store = open_many(url.render_as_string(hide_password=False))
    assert isinstance(store, SqlRunStore)
    return store


def _owner_sql(store: SqlRunStore, statement: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text(statement))


@pytest.mark.slow
def test_a_read_only_server_is_unavailable_to_claims_and_saves(
    pg_admin: Engine, db: str, open_many: Callable[[str], RunStore]
) -> None:
    store = _open(pg_admin, db, open_many)
    store.ping()
    _read_only(pg_admin, db, on=True)
    running = rec(TASK, 0, RunStatus.RUNNING)
    with pytest.raises(StoreUnavailable, match="read-only"):
        store.claim_many([running])
    with pytest.raises(StoreUnavailable, match="read-only"):
        store.save_many([rec(TASK, 0)])
    # Readiness asks the ping: a server that answers but takes no writes is not ready.
    with pytest.raises(StoreUnavailable, match="read-only"):
        store.ping()
    _read_only(pg_admin, db, on=False, end_sessions=False)
    store.ping()  # its session begun read-only was not kept


@pytest.mark.parametrize(
    ("damage", "repair", "said"),
    [
        (
            "ALTER TABLE runs RENAME TO runs_restoring",
            "ALTER TABLE runs_restoring RENAME TO runs",
            "does not exist",
        ),
        (
            "REVOKE INSERT, UPDATE ON runs FROM CURRENT_USER",
            "GRANT INSERT, UPDATE ON runs TO CURRENT_USER",
            "permission denied",
        ),
        # has_table_privilege of 'INSERT, UPDATE' is true with either: each is asked alone.
        (
            "REVOKE UPDATE ON runs FROM CURRENT_USER",
            "GRANT UPDATE ON runs TO CURRENT_USER",
            "permission denied",
        ),
    ],
    ids=["table-gone", "privileges-revoked", "update-revoked"],
)
def test_a_missing_table_or_privilege_is_unavailable_then_written(
    pg_admin: Engine,
    db: str,
    open_many: Callable[[str], RunStore],
    damage: str,
    repair: str,
    said: str,
) -> None:
    store = _open(pg_admin, db, open_many)
    _owner_sql(store, damage)
    with pytest.raises(StoreUnavailable, match=said):
        store.save_many([rec(TASK, 0)])
    with pytest.raises(StoreUnavailable):
        store.ping()  # readiness: not ready while the records cannot be written
    _owner_sql(store, repair)
    store.ping()
    store.save_many([rec(TASK, 0)])
    assert store.get(rec(TASK, 0).id) is not None


def test_a_run_ended_while_read_only_is_recorded_once_writable(
    pg_admin: Engine, db: str, open_many: Callable[[str], RunStore]
) -> None:
    store = _open(pg_admin, db, open_many)
    final = rec(TASK, 0)
    running = dataclasses.replace(final, status=RunStatus.RUNNING, finished_at=None, exit_code=None)

    async def scenario() -> None:
        recorder = Recorder(store, retry_initial=0.05, retry_max=0.2)
        _read_only(pg_admin, db, on=True)
        assert await recorder.claim(running) is False  # kept: the run goes on
        assert await recorder.save(final) is False  # kept behind it
        assert await recorder.flush(0.5) is False
        assert recorder.pending == 1  # one slot: the newest state replaced the claim's
        assert recorder.dropped == 0
        assert store.get(final.id) is None
        # Writable again, the sessions left as they are: those the pool holds still read
        # only (a session keeps the setting it began with), so they must not be used again.
        _read_only(pg_admin, db, on=False, end_sessions=False)
        assert await recorder.flush(30)
        await recorder.close(1)

    asyncio.run(scenario())
    got = store.get(final.id)
    assert got is not None
    assert got.status is RunStatus.SUCCEEDED


def test_a_record_refused_for_another_reason_is_tried_again_then_dropped(
    pg_admin: Engine, db: str, open_many: Callable[[str], RunStore]
) -> None:
    """An error that is no outage (here a column renamed: 42703) is not thrown away at once:
    it may pass. The record waits and is written once it does; a record that keeps failing is
    dropped after REFUSED_TRIES, and the records behind it are written meanwhile."""
    store = _open(pg_admin, db, open_many)
    first, second, third = rec(TASK, 0), rec(TASK, 1), rec(TASK, 2)

    async def scenario() -> None:
        recorder = Recorder(store, retry_initial=0.05, retry_max=0.2)
        _owner_sql(store, "ALTER TABLE runs RENAME COLUMN details TO details_moved")
        assert await recorder.save(first) is False  # kept, not dropped
        assert recorder.pending == 1
        _owner_sql(store, "ALTER TABLE runs RENAME COLUMN details_moved TO details")
        assert await recorder.flush(30)
        assert recorder.dropped == 0

        _owner_sql(
            store,
            "ALTER TABLE runs ADD CONSTRAINT ck_not_1 CHECK (scheduled_at <> "
            f"'{second.scheduled_at.isoformat()}')",
        )
        assert await recorder.save(second) is False
        assert await recorder.save(third) is False  # behind it
        assert await recorder.flush(30)  # the refused one dropped, the other written
        assert recorder.dropped == 1
        await recorder.close(1)

    asyncio.run(scenario())
    assert store.get(first.id) is not None
    assert store.get(second.id) is None
    assert store.get(third.id) is not None
