"""A reader of the history (``crontask runs``) behind a lock on the runs table: it gives up.

``LOCK TABLE runs``, VACUUM FULL, REINDEX or a newer replica's migration hold the table's ACCESS
EXCLUSIVE lock on PostgreSQL, which every SELECT waits for: ``crontask runs`` waited without
limit, saying nothing. A reader's store (``open_store(existing=True)``) waits at most
``sql.READ_LOCK_WAIT`` for a lock, then the store is unavailable, saying why. The running
crontask's own reads are the API's to bound (``PAGE_READ_WAIT``): its store still waits.

Each test holds the lock until the read has given up (or, for the running crontask's read,
until it is seen still waiting); a read that waited for ever would fail the suite's timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta

import pytest
import sqlalchemy as sa

from reconciler.store import RunQuery, RunStore, StoreUnavailable, open_store, sql

from ._records import rec

pytestmark = pytest.mark.postgres

GIVE_UP_WITHIN = 20.0  # seconds: the reader's wait here is 0.2 s
TASK = "ops/nightly-backup"


def _locked(url: str) -> tuple[sa.Engine, sa.Connection]:
    """Another session holding the runs table's ACCESS EXCLUSIVE lock (until rolled back)."""
    other = sa.create_engine(url)
    conn = other.connect()
    conn.execute(sa.text("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE"))
    return other, conn


def _query(store: RunStore) -> list[str]:
    return [r.id for r in store.query(RunQuery()).items]


def test_a_reader_gives_up_behind_a_lock_on_the_runs_table(
    pg_url: str, open_many: Callable[..., RunStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "READ_LOCK_WAIT", timedelta(milliseconds=200))
    open_many(pg_url).save_many([rec(TASK, 0)])
    reader = open_store(pg_url, existing=True)
    other, conn = _locked(pg_url)
    try:
        with ThreadPoolExecutor(1) as pool:
            reading: Future[list[str]] = pool.submit(_query, reader)
            try:
                with pytest.raises(StoreUnavailable, match=r"run store unavailable: .*lock"):
                    reading.result(timeout=GIVE_UP_WITHIN)
            finally:
                conn.rollback()
        # The lock gone, the same reader reads.
        assert _query(reader) == [rec(TASK, 0).id]
    finally:
        conn.close()
        other.dispose()
        reader.close()


def test_the_running_crontasks_reads_still_wait_for_the_lock(
    pg_url: str, open_many: Callable[..., RunStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "READ_LOCK_WAIT", timedelta(milliseconds=200))
    store = open_many(pg_url)  # as crontask run opens it
    store.save_many([rec(TASK, 0)])
    other, conn = _locked(pg_url)
    try:
        with ThreadPoolExecutor(1) as pool:
            reading: Future[list[str]] = pool.submit(_query, store)
            try:
                # Well past a reader's wait, it still waits: a lock is no outage to it.
                with pytest.raises(FutureTimeout):
                    reading.result(timeout=1)
            finally:
                conn.rollback()
            assert reading.result(timeout=GIVE_UP_WITHIN) == [rec(TASK, 0).id]
    finally:
        conn.close()
        other.dispose()
