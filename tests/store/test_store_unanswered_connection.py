"""A run store call on a PostgreSQL connection the database never answers (a proxy or load
balancer in front of it that lost its upstream and keeps the client's TCP connection open: its
kernel acknowledges the data and answers the keepalives, the server never gets the query, so
neither the socket settings nor ``statement_timeout`` end the wait) fails as an outage does
(StoreUnavailable) a second past its bound, and the next call, once the database answers
again, works. A claim waited for ever: under ``Forbid`` every later slot of its task was
skipped, its claim "waiting for the run store", until crontask was restarted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import event

from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.store import StoreUnavailable, open_store
from reconciler.store.sql import SqlRunStore
from tests.faults.swallowing import Swallowing, answer

pytestmark = pytest.mark.postgres

# The bounds the test gives the store's calls (seconds).
BOUND = 1.0


def record(n: int, status: RunStatus = RunStatus.RUNNING) -> RunRecord:
    return RunRecord(
        id=f"default.t-b.{n}",
        task="default/t-b",
        scheduled_at=datetime(2026, 12, 7, 17, n, tzinfo=UTC),
        trigger=Trigger.SCHEDULE,
        status=status,
        owner="a",
    )


@pytest.fixture
def proxied(pg_url: str) -> Iterator[tuple[SqlRunStore, Swallowing]]:
    open_store(pg_url).close()  # migrated
    proxy = Swallowing.to(pg_url)
    store = SqlRunStore.open(proxy.url(pg_url), writer=True)
    store.write_answer_wait = store.read_answer_wait = BOUND
    try:
        yield store, proxy
    finally:
        proxy.swallow.clear()
        store.close()
        proxy.close()


def test_a_claim_never_answered_fails_and_the_next_one_is_taken(
    proxied: tuple[SqlRunStore, Swallowing],
) -> None:
    store, proxy = proxied
    assert answer(lambda: store.claim_many([record(0)])) == [True]
    proxy.swallow.set()
    failed = answer(lambda: store.claim_many([record(1)]))
    assert isinstance(failed, StoreUnavailable)
    assert "did not answer" in str(failed)
    proxy.swallow.clear()
    assert answer(lambda: store.claim_many([record(2)])) == [True]
    # The claim cut off never reached the server: its slot is free to claim.
    assert answer(lambda: store.claim_many([record(1)])) == [True]


@pytest.mark.slow  # 8 s: two calls waited out to their bound
def test_a_save_and_a_read_never_answered_fail_and_the_next_ones_work(
    proxied: tuple[SqlRunStore, Swallowing],
) -> None:
    store, proxy = proxied
    assert answer(lambda: store.claim_many([record(0)])) == [True]
    proxy.swallow.set()
    assert isinstance(answer(lambda: store.running("default/t-b")), StoreUnavailable)
    proxy.swallow.clear()
    assert answer(lambda: store.running("default/t-b")) == [record(0)]
    proxy.swallow.set()
    done = record(0, RunStatus.SUCCEEDED)
    assert isinstance(answer(lambda: store.save_many([done])), StoreUnavailable)
    proxy.swallow.clear()
    assert answer(lambda: store.save_many([done])) == []
    assert answer(lambda: store.get(done.id)) == done


def test_a_call_cut_off_on_the_connection_it_holds_fails_and_the_next_one_is_taken(
    proxied: tuple[SqlRunStore, Swallowing],
) -> None:
    store, proxy = proxied
    assert answer(lambda: store.claim_many([record(0)])) == [True]

    def cut_off(*_: object) -> None:  # after the checkout's ping: the claim holds its connection
        proxy.swallow.set()

    event.listen(store.engine, "before_cursor_execute", cut_off, once=True)
    failed = answer(lambda: store.claim_many([record(1)]))
    assert isinstance(failed, StoreUnavailable)
    assert "did not answer" in str(failed)
    proxy.swallow.clear()
    assert answer(lambda: store.claim_many([record(1), record(2)])) == [True, True]
