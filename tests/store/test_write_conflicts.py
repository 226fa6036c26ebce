"""Two writers that want the same rows at once, on PostgreSQL: each claim gets a definite answer.

PostgreSQL breaks a deadlock by rolling one transaction back. That is not the store being
unavailable: a claim reported as "unavailable" runs its slot anyway, while the other replica,
whose claim went through, runs it too. The store runs such a write again, and sorts a batch by
key so that two replicas claiming the same slots do not deadlock in the first place.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconciler.core.runs import RunRecord, RunStatus
from reconciler.store import RunStore
from reconciler.store.sql import SqlRunStore
from reconciler.store.sql_rows import record_to_row
from reconciler.store.sql_schema import runs

from ._records import rec

pytestmark = pytest.mark.postgres

# Backends blocked by the given one: only this test's (other tests share the server, and one
# of theirs waiting for a lock of their own must not count as the store's claim waiting).
_BLOCKED_BY = sa.text(
    "SELECT count(*) FROM pg_stat_activity WHERE :blocker = ANY(pg_blocking_pids(pid))"
)


@pytest.fixture
def pg_store(pg_url: str, open_many: Callable[[str], RunStore]) -> SqlRunStore:
    store = open_many(pg_url)
    assert isinstance(store, SqlRunStore)
    return store


@pytest.fixture
def other(pg_store: SqlRunStore) -> Iterator[Connection]:
    """Another writer's connection to the same database, in a transaction the test drives."""
    with pg_store.engine.connect() as conn:
        yield conn


def _wait_until_blocked(conn: Connection, blocker: int, n: int) -> None:
    """Until ``n`` backends wait for a lock the backend ``blocker`` holds (polling the
    server's own view of them)."""
    deadline = time.monotonic() + 30
    while conn.execute(_BLOCKED_BY, {"blocker": blocker}).scalar_one() < n:
        # pg_stat_activity is read once a transaction: a poll in the same one never sees a
        # backend that began to wait after the first (a connection not in autocommit).
        conn.rollback()
        assert time.monotonic() < deadline, "no transaction ever waited for the other"
        time.sleep(0.01)


def test_a_claim_rolled_back_by_a_deadlock_is_tried_again_not_reported_unavailable(
    pg_store: SqlRunStore, other: Connection, pg_admin: sa.Engine
) -> None:
    """The server rolls back the transaction whose deadlock check runs first: the store's, which
    waited first, unless its backend is held up past the other's (a loaded machine: seen once).
    That run then tests nothing of the store's retry, and the scenario is played again."""
    for attempt in range(ATTEMPTS):
        if _deadlock_at(pg_store, other, pg_admin, attempt):
            return
    pytest.fail(f"the server never rolled back the store's claim in {ATTEMPTS} tries")


ATTEMPTS = 5


def _deadlock_at(pg_store: SqlRunStore, other: Connection, pg_admin: sa.Engine, n: int) -> bool:
    """One deadlock between the store's claim and another writer (the slots of ``n``); whether
    the server rolled the store's claim back (it is then asserted to have been tried again)."""
    a, b = (rec(at=2 * n + k, status=RunStatus.RUNNING, owner="replica-a") for k in (0, 1))
    first, second = sorted([a, b], key=lambda r: r.id)
    # The other writer holds the second row; the store's claim takes the first, then waits.
    tx = other.begin()
    blocker = other.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    other.execute(runs.insert().values(**_row(second, "replica-b")))
    with ThreadPoolExecutor(2) as pool:
        claimed = pool.submit(pg_store.claim_many, [a, b])
        with pg_admin.connect() as watcher:
            _wait_until_blocked(watcher, blocker, 1)
            # Now the other writer wants the first row: a cycle. The server finds it after
            # deadlock_timeout in the transaction that waited first, the store's, and rolls it
            # back; the other writer then goes on, and commits both rows.
            taken = pool.submit(other.execute, runs.insert().values(**_row(first, "replica-b")))
            try:
                taken.result(timeout=60)
            except sa.exc.OperationalError as err:
                if not isinstance(err.orig, psycopg.errors.DeadlockDetected):
                    raise
                tx.rollback()  # the other writer was the one rolled back: the claim goes on
                assert claimed.result(timeout=60) == [True, True]
                return False
        tx.commit()
        assert claimed.result(timeout=60) == [False, False]
    owners = {r.id: r.owner for r in (pg_store.get(first.id), pg_store.get(second.id)) if r}
    assert owners == {first.id: "replica-b", second.id: "replica-b"}
    return True


def test_two_replicas_claiming_one_burst_in_opposite_orders_split_it_without_error(
    pg_url: str, open_many: Callable[[str], RunStore]
) -> None:
    stores = [open_many(pg_url), open_many(pg_url)]
    for burst_no in range(3):
        burst = [
            rec(task=f"ops/t{n:04}", at=burst_no, status=RunStatus.RUNNING) for n in range(1000)
        ]
        start = threading.Barrier(2)

        def claim(store: RunStore, batch: list[RunRecord], start: threading.Barrier) -> list[str]:
            start.wait(timeout=30)
            return [r.id for r, ok in zip(batch, store.claim_many(batch), strict=True) if ok]

        with ThreadPoolExecutor(2) as pool:
            # Both write one statement for the whole burst at once, one from each end.
            one = pool.submit(claim, stores[0], burst, start)
            two = pool.submit(claim, stores[1], burst[::-1], start)
            won = one.result(timeout=120) + two.result(timeout=120)
        assert sorted(won) == sorted(r.id for r in burst)  # each slot claimed exactly once


def _row(record: RunRecord, owner: str) -> dict[str, Any]:
    return record_to_row(dataclasses.replace(record, owner=owner))
