"""Another process holding the run store's write lock: a run's write gives up, pruning waits.

A run waits for its claim, and the recorder writes one batch at a time: a claim that waited
the whole busy timeout (30 s) behind an ``sqlite3`` shell's ``BEGIN EXCLUSIVE`` or a ``LOCK
TABLE`` stopped every run of every task for as long. A run's write waits
``WRITE_LOCK_WAIT`` and is then ``StoreUnavailable`` (the run starts anyway, its record
waits); pruning, in the background, still waits its turn.

Each test holds the lock until the claim has given up; had the claim waited as pruning does,
it would have been answered after the holder let go (SQLite: at most 25 s later; PostgreSQL
waited for ever, until the suite's timeout), and failed the test.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.core.runs import RunStatus
from reconciler.store import DB_FILENAME, RunStore, sql, sql_exclusive, sqlite_url
from reconciler.store.base import StoreUnavailable
from reconciler.store.sql import SqlRunStore
from reconciler.store.sql_rows import record_to_row
from reconciler.store.sql_schema import runs
from tests.store.test_write_conflicts import _wait_until_blocked

from ._records import T0, rec

HOLD_AT_MOST = 25.0  # seconds: the holder lets go by itself, so a broken test cannot hang
TASK = "ops/nightly-backup"

# Holds SQLite's write lock on the file argv[1] until a line comes on stdin (or HOLD_AT_MOST).
_HOLDER = f"""
import select, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
select.select([sys.stdin], [], [], {HOLD_AT_MOST})
conn.execute("ROLLBACK")
"""


def _prunable(store: RunStore) -> None:
    """Three finished runs of one task: a prune keeping one deletes two."""
    store.save_many([rec(TASK, n) for n in range(3)])


def _prune(store: RunStore) -> int:
    return store.prune({TASK: (1, 1)}, None, T0)


def _while_held(store: RunStore, release: Callable[[], None]) -> None:
    """With the lock held: a claim and a save give up while a prune started first still
    waits; once the lock is let go, the prune goes through."""
    with ThreadPoolExecutor(1) as pool:
        pruning: Future[int] = pool.submit(_prune, store)
        try:
            with pytest.raises(StoreUnavailable):
                store.claim_many([rec(TASK, 10, RunStatus.RUNNING)])
            with pytest.raises(StoreUnavailable):
                store.save_many([rec(TASK, 11)])
            assert not pruning.done()  # the background's write waits longer
        finally:
            release()
        assert pruning.result(timeout=60) == 2
    assert store.claim_many([rec(TASK, 10, RunStatus.RUNNING)]) == [True]


@pytest.fixture
def sqlite_store(tmp_path: Path, open_many: Callable[[str], RunStore]) -> RunStore:
    return open_many(sqlite_url(tmp_path))


def test_sqlite_a_runs_write_gives_up_behind_another_processs_lock(
    sqlite_store: RunStore, tmp_path: Path
) -> None:
    _prunable(sqlite_store)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path / DB_FILENAME)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline() == "held\n"

        def release() -> None:
            assert holder.stdin is not None
            holder.stdin.write("go\n")
            holder.stdin.flush()

        _while_held(sqlite_store, release)
    finally:
        holder.kill()
        holder.wait()
        holder.stdin.close()
        holder.stdout.close()


@pytest.fixture
def pg_store(pg_url: str, open_many: Callable[[str], RunStore]) -> SqlRunStore:
    store = open_many(pg_url)
    assert isinstance(store, SqlRunStore)
    return store


@pytest.mark.postgres
def test_postgres_a_runs_write_gives_up_behind_a_table_lock(pg_store: SqlRunStore) -> None:
    _prunable(pg_store)
    with pg_store.engine.connect() as other:
        other.execute(sa.text("LOCK TABLE runs IN EXCLUSIVE MODE"))
        # Had the claim no lock wait, it would wait for ever: the suite's timeout fails it.
        _while_held(pg_store, other.rollback)


@pytest.mark.postgres
def test_postgres_an_exclusive_claim_waits_for_another_replicas_claim_of_the_task(
    pg_store: SqlRunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replicas' exclusive claims of one task take turns on an advisory lock. One that gave up
    on it after the run path's lock wait was made plainly (controller.claims), without the
    look for the other replica's run: under Forbid its slot ran beside that run. It waits."""
    monkeypatch.setattr(sql, "WRITE_LOCK_WAIT", timedelta(milliseconds=100))
    # A task of this test's own: advisory locks are the database's, not the schema's, so no
    # other test's exclusive claim, on the other worker, can be the lock this claim waits for.
    task = f"ops/lock-wait-{uuid.uuid4().hex[:12]}"
    theirs = rec(task, 0, RunStatus.RUNNING, owner="b:2:y")
    with pg_store.engine.connect() as other, ThreadPoolExecutor(1) as pool:
        # Another replica's claim of the task, stalled inside its transaction.
        other.execute(sql_exclusive.LOCK_TASKS, {"kind": sql_exclusive.TASK_LOCK, "tasks": [task]})
        other.execute(sa.insert(runs).values(record_to_row(theirs)))
        blocker = other.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        claiming = pool.submit(pg_store.claim_exclusive, [rec(task, 1, RunStatus.RUNNING)])
        with pg_store.engine.connect() as watch:
            _wait_until_blocked(watch, blocker, 1)
        # Well past the run path's lock wait, the claim still waits for the lock.
        with pytest.raises(FutureTimeout):
            claiming.result(timeout=1)
        other.commit()
        (answer,) = claiming.result(timeout=60)
    assert not answer.claimed
    assert [r.id for r in answer.running] == [theirs.id]
