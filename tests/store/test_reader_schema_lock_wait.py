"""A reader of the history (``crontask runs``) behind a lock on the schema's own tables: it
gives up, as it does behind one on the runs table (``test_reader_lock_wait``).

Opening a store ``existing`` checks its schema first (``migrations.check``): it reads
``alembic_version``, and for a newer crontask's schema ``crontask_schema_readers``. Another
session's ``LOCK TABLE alembic_version`` (or anything else holding its ACCESS EXCLUSIVE lock)
held that read without limit, saying nothing. It now waits ``sql.READ_LOCK_WAIT``, then the
store is unavailable, in the words a locked runs table gets. ``crontask run``'s open, which
migrates, waits as before (its own lock wait is the migration's, ``test_migration_lock_wait``).

Each test holds the lock until the open has given up (or, for ``crontask run``'s open, until
it is seen still waiting); an open that waited for ever fails here after ``GIVE_UP_WITHIN``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta

import pytest
import sqlalchemy as sa

from reconciler.store import RunQuery, RunStore, StoreUnavailable, migrations, open_store, sql

from ._records import rec

pytestmark = pytest.mark.postgres

GIVE_UP_WITHIN = 20.0  # seconds: the reader's wait here is 0.2 s
TASK = "ops/nightly-backup"
# What a reader says when its wait for a lock ran out, whichever table it was (sql_errors).
GAVE_UP = (
    "run store unavailable: another session holds a lock on crontask's tables"
    " (LOCK TABLE, VACUUM FULL, REINDEX, a schema upgrade?), not released within 0.2 s;"
    " try again later"
)


def _locked(url: str, table: str) -> tuple[sa.Engine, sa.Connection]:
    """Another session holding ``table``'s ACCESS EXCLUSIVE lock (until rolled back)."""
    other = sa.create_engine(url)
    conn = other.connect()
    conn.execute(sa.text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
    return other, conn


def _open_and_read(url: str, *, existing: bool) -> list[str]:
    store = open_store(url, existing=existing)
    try:
        return [r.id for r in store.query(RunQuery()).items]
    finally:
        store.close()


def _newer_schema_allowing_this_one(store: RunStore) -> None:
    """A newer crontask's revision, whose readers table says this crontask may read it: the
    reader's check then reads that table too."""
    assert isinstance(store, sql.SqlRunStore)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
        conn.execute(sa.text(f"DELETE FROM {migrations.READERS_TABLE}"))  # noqa: S608
        conn.execute(
            sa.text(f"INSERT INTO {migrations.READERS_TABLE} (oldest) VALUES (:o)"),  # noqa: S608
            {"o": migrations.HEAD},
        )


@pytest.mark.parametrize("table", ["alembic_version", migrations.READERS_TABLE])
def test_a_readers_open_gives_up_behind_a_lock_on_the_schemas_tables(
    table: str,
    pg_url: str,
    open_many: Callable[..., RunStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sql, "READ_LOCK_WAIT", timedelta(milliseconds=200))
    store = open_many(pg_url)
    store.save_many([rec(TASK, 0)])
    if table == migrations.READERS_TABLE:
        _newer_schema_allowing_this_one(store)
    other, conn = _locked(pg_url, table)
    try:
        with ThreadPoolExecutor(1) as pool:
            opening: Future[list[str]] = pool.submit(_open_and_read, pg_url, existing=True)
            try:
                with pytest.raises(StoreUnavailable) as gave_up:
                    opening.result(timeout=GIVE_UP_WITHIN)
            finally:
                conn.rollback()
        assert str(gave_up.value) == GAVE_UP
        # The lock gone, a reader opens and reads.
        assert _open_and_read(pg_url, existing=True) == [rec(TASK, 0).id]
    finally:
        conn.close()
        other.dispose()


def test_crontask_runs_open_still_waits_for_a_lock_on_alembic_version(
    pg_url: str, open_many: Callable[..., RunStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "READ_LOCK_WAIT", timedelta(milliseconds=200))
    open_many(pg_url).save_many([rec(TASK, 0)])
    other, conn = _locked(pg_url, "alembic_version")
    try:
        with ThreadPoolExecutor(1) as pool:
            opening: Future[list[str]] = pool.submit(_open_and_read, pg_url, existing=False)
            try:
                # Well past a reader's wait, it still waits: crontask run's open is not bounded
                # by the reader's wait (its migration has its own, under the migration's lock).
                with pytest.raises(FutureTimeout):
                    opening.result(timeout=1)
            finally:
                conn.rollback()
            assert opening.result(timeout=GIVE_UP_WITHIN) == [rec(TASK, 0).id]
    finally:
        conn.close()
        other.dispose()
