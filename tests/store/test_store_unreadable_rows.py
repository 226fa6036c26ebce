"""Rows this version cannot read: a status or trigger it does not know (the columns have no
CHECK; a newer crontask sharing the database wrote them, or a hand edit). Each is left out of
what is read, warned of once per value, and kept by retention, counted in no bucket; one made
every history read, the status page and every prune fail before.

And a read whose conversion raised must not leave its statement unfinished on a pooled SQLite
connection: it kept that connection on an old snapshot, and once another connection had
written, each write on it failed at once, "database is locked" (claims failing as an outage).

A real SQLite file (and PostgreSQL with ``CRONTASK_TEST_POSTGRES_URL``), rows written by SQL.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.core.runs import RunRecord, RunStatus
from reconciler.store import RunQuery, RunStore
from reconciler.store import sql_rows as sql_rows_module
from reconciler.store.sql_rows import record_to_row
from reconciler.store.sql_schema import runs
from tests.store._records import T0, rec

TASK = "ops/report"


@pytest.fixture
def outside(sql_url: str) -> Iterator[sa.Engine]:
    """Another client of the database: its own engine, its own connections."""
    engine = sa.create_engine(sql_url)
    yield engine
    engine.dispose()


def _unknown() -> str:
    """A value no version knows, new for each test: an unknown value is warned of once per
    process, and the tests of a worker share one."""
    return f"x{uuid.uuid4().hex[:12]}"


def _write(engine: sa.Engine, record: RunRecord, **raw: str) -> None:
    with engine.begin() as conn:
        conn.execute(runs.insert().values({**record_to_row(record), **raw}))


def _warnings(caplog: pytest.LogCaptureFixture, value: str) -> int:
    return sum(
        1
        for r in caplog.records
        if r.name == "crontask.store" and value in str(getattr(r, "fields", {}).get("value"))
    )


def test_reads_leave_out_what_this_version_cannot_read(
    sql_store: RunStore, outside: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    status, trigger = _unknown(), _unknown()
    good = [rec(TASK, minute) for minute in range(0, 40, 10)]
    for record in good:
        sql_store.claim(record)
    # The newest run of the task, and one between others; a running one; a retry of a good run.
    _write(outside, rec(TASK, 50), status=status)
    _write(outside, rec(TASK, 15), trigger=trigger)
    _write(outside, rec(TASK, 45, RunStatus.RUNNING), trigger=trigger)
    _write(outside, rec(TASK, 0, attempt=2), status=status)

    with caplog.at_level(logging.WARNING, logger="crontask.store"):
        newest_first = good[::-1]
        assert sql_store.query(RunQuery(limit=100)).items == newest_first
        assert sql_store.query(RunQuery(task=TASK, limit=100, output=False)).items == [
            dataclasses.replace(r, output="") for r in newest_first
        ]
        # Paged: each readable record once, the cursor past the rows left out.
        seen: list[RunRecord] = []
        cursor = None
        for _ in range(10):
            page = sql_store.query(RunQuery(task=TASK, limit=2, cursor=cursor))
            seen += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == newest_first
        assert sql_store.latest(TASK) == good[-1]
        assert sql_store.running() == []
        assert sql_store.attempts(good[0].id) == [good[0]]
        assert sql_store.get(good[0].id) == good[0]  # its latest attempt this version reads
        assert sql_store.get(good[0].id, 2) is None
        assert sql_store.get(rec(TASK, 50).id) is None
    # Once per value, not per row or read.
    assert _warnings(caplog, status) == 1
    assert _warnings(caplog, trigger) == 1


def test_an_unknown_trigger_is_no_slot(sql_store: RunStore, outside: sa.Engine) -> None:
    sql_store.claim(rec(TASK, 0))
    # A trigger a newer crontask knows may name a moment as a manual run does.
    _write(outside, rec(TASK, 30), trigger=_unknown())
    assert sql_store.last_slots() == {TASK: T0}


def test_retention_keeps_them_and_counts_them_in_no_bucket(
    sql_store: RunStore, outside: sa.Engine
) -> None:
    status, trigger = _unknown(), _unknown()
    good = [rec(TASK, minute) for minute in (0, 10, 20, 30)]
    for record in good:
        sql_store.claim(record)
    unread = [rec(TASK, 35), rec(TASK, 5), rec(TASK, 25, attempt=2)]
    _write(outside, unread[0], status=status)
    _write(outside, unread[1], trigger=trigger)
    _write(outside, unread[2], status=status)  # a retry of the run at 25: that run stays too
    sql_store.claim(rec(TASK, 25))
    now = T0 + timedelta(days=400)

    # One success kept: the newest readable one (the unknown row at 35 fills no bucket).
    deleted = sql_store.prune({TASK: (1, 1)}, None, now)
    assert deleted == 3  # the runs at 20, 10 and 0
    left = {(r[0], r[1]) for r in _rows(outside)}
    assert left == {
        (rec(TASK, 30).id, 1),
        (rec(TASK, 25).id, 1),
        (rec(TASK, 25).id, 2),
        (rec(TASK, 35).id, 1),
        (rec(TASK, 5).id, 1),
    }
    # By age, with the task no longer declared: only the unreadable ones' runs stay.
    sql_store.prune({}, timedelta(days=1), now, declared=())
    assert {(r[0], r[1]) for r in _rows(outside)} == left - {(rec(TASK, 30).id, 1)}


def _rows(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(runs.c.id, runs.c.attempt)).all())


def test_a_claim_after_reads_of_them_and_another_write_goes_through(
    sql_url: str, open_many: Callable[..., RunStore], outside: sa.Engine
) -> None:
    store = open_many(sql_url)
    for n in range(50):  # a read's statement stays unfinished only with rows still to come
        store.claim(rec(TASK, n))
    _write(outside, rec(TASK, 60), trigger=_unknown())
    _write(outside, rec(TASK, 61), status=_unknown())
    pages = [store.query(RunQuery(limit=100)) for _ in range(3)]
    assert all(len(page.items) == 50 for page in pages)
    store.prune({TASK: (100, 100)}, None, T0)
    open_many(sql_url).claim(rec("ops/other", 0))  # another connection writes
    for n in range(100, 105):  # every pooled connection taken in turn
        store.claim(rec(TASK, n))
    assert store.latest(TASK) == rec(TASK, 104)


def test_a_claim_after_a_read_that_raised_and_another_write_goes_through(
    sql_url: str,
    open_many: Callable[..., RunStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = open_many(sql_url)
    for n in range(50):
        store.claim(rec(TASK, n, RunStatus.RUNNING))

    def broken(*args: object, **kwargs: object) -> RunRecord:
        raise RuntimeError("a record that cannot be made")

    # Whatever raises while the records are made, the read's statement is done by then.
    failures: list[pytest.ExceptionInfo[RuntimeError]] = []
    with monkeypatch.context() as patch:
        patch.setattr(sql_rows_module, "RunRecord", broken)
        for read in (lambda: store.query(RunQuery(limit=100)), store.running):
            with pytest.raises(RuntimeError) as failed:
                read()
            failures.append(failed)  # its traceback held, as a caller's handler may hold it
    open_many(sql_url).claim(rec("ops/other", 0))  # another connection writes
    for n in range(100, 105):  # every pooled connection taken in turn
        store.claim(rec(TASK, n))
    assert store.get(rec(TASK, 104).id) == rec(TASK, 104)
    assert len(failures) == 2


def test_an_exclusive_claim_beside_them_is_answered(
    sql_store: RunStore, outside: sa.Engine
) -> None:
    # A row of the very slot claimed that this version cannot read: the claim neither raises
    # inside its write transaction nor takes the slot written already.
    _write(outside, rec(TASK, 10), status=_unknown())
    slot, free = rec(TASK, 10, RunStatus.RUNNING), rec(TASK, 20, RunStatus.RUNNING)
    answers = sql_store.claim_exclusive([slot, free])
    assert [a.claimed for a in answers] == [False, True]
    assert sql_store.get(free.id) == free


def test_a_run_of_a_trigger_this_version_does_not_know_holds_its_task(
    sql_store: RunStore, outside: sa.Engine
) -> None:
    # A newer replica's run (a trigger this one does not know) is running: under Forbid this
    # replica's run of the task must wait, as beside any other replica's run.
    theirs = dataclasses.replace(rec(TASK, 5, RunStatus.RUNNING), owner="newer-replica")
    _write(outside, theirs, trigger=_unknown())
    mine = dataclasses.replace(rec(TASK, 6, RunStatus.RUNNING), owner="older-replica")
    (answer,) = sql_store.claim_exclusive([mine])
    assert not answer.claimed
    assert [r.id for r in answer.running] == [theirs.id]
    assert sql_store.get(mine.id) is None
