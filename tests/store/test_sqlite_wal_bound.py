"""A large prune leaves ``runs.db-wal`` within ``journal_size_limit`` (the README's "about
4 MB"): one prune transaction of scattered deletes on a large table writes tens of MB of pages
to the WAL, and SQLite reuses a WAL file at the size it reached (30-47 MB after pruning a
million runs) until the last connection closes, unless the connection sets a size limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from reconciler.store import open_store, sqlite_url
from reconciler.store.sql import SqlRunStore

# The README's "about 4 MB" between checkpoints.
_LIMIT = 4 * 1024 * 1024
_NOW = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)
_TASKS = 200
_ROWS = 60_000  # past one prune transaction's 2 000 rows many times over, pages far apart

# One run a minute per task, all older than the max age: the prune deletes them all (no task
# is declared, so no task's newest run of a slot is kept as its mark).
_FILL = sa.text("""
WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < :rows - 1),
  s(i, at) AS (SELECT i, datetime('2026-12-05 18:00:00', -(i / :tasks) || ' minutes') FROM c)
INSERT INTO runs (id, attempt, task, scheduled_at, trigger, status, started_at, finished_at,
                  exit_code, reason, message, output)
SELECT 'ns.t' || (i % :tasks) || '.' || i, 1, 'ns/t' || (i % :tasks),
       strftime('%Y-%m-%d %H:%M:%S.000000', at), 'schedule', 'succeeded',
       strftime('%Y-%m-%d %H:%M:%S.000000', at),
       strftime('%Y-%m-%d %H:%M:%S.000000', at, '+1 seconds'),
       0, NULL, 'exited', 'some output of the run, as a real one has'
FROM s
""")


def _wal(db: Path) -> int:
    wal = db.with_name(db.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


@pytest.mark.slow
def test_wal_is_bounded_after_a_large_prune(tmp_path: Path) -> None:
    state = tmp_path / "state"
    db = state / "runs.db"
    store = open_store(sqlite_url(state), writer=True)
    assert isinstance(store, SqlRunStore)
    try:
        with store.engine.begin() as conn:
            conn.execute(_FILL, {"rows": _ROWS, "tasks": _TASKS})
        with store.engine.connect() as conn:
            # The WAL of the fill itself checkpointed and reset, so what follows is the prune's.
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            assert conn.exec_driver_sql("SELECT count(*) FROM runs").scalar() == _ROWS
        sizes: list[int] = []  # the WAL file's size as each transaction begins

        def begin(_conn: object) -> None:
            sizes.append(_wal(db))

        event.listen(store.engine, "begin", begin)
        try:
            assert store.prune({}, timedelta(hours=1), _NOW, declared=()) == _ROWS
        finally:
            event.remove(store.engine, "begin", begin)
        grown = max(sizes)
        # A passive checkpoint, as SQLite's own after a commit, then the next write (a run's
        # record): the WAL restarts from its start and is cut back to the limit at its commit.
        with store.engine.connect() as conn:
            busy, frames, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
            assert (busy, frames == done) == (0, True)
        with store.engine.begin() as conn:
            conn.execute(_FILL, {"rows": 1, "tasks": _TASKS})  # one row: a frame or so
        after = _wal(db)
    finally:
        store.close()
    # A prune transaction did write more than the limit (the WAL is that large as the next
    # one begins): otherwise this test would prove nothing.
    assert grown > _LIMIT, grown
    assert after <= _LIMIT, (grown, after)
