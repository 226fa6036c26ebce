"""``RunStore.stop_requests`` with the runs going on the owner: a stop asked of a run that
another replica marked interrupted since (its owner frozen past its lease) still reaches its
owner, which may run it still (``controller.sweep``). The runs going are named with their
attempt: a stop asked of an ended attempt is not its retry's. Read at each renewal, through
indexes, in chunks of ids (one IN list grew with the runs in flight)."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from reconciler.core.runs import RunStatus
from reconciler.store import RunStore, sql_running
from reconciler.store.sql import SqlRunStore

from ._records import T0, rec

MINE, THEIRS = "host-a:1:x", "host-b:2:y"


def test_a_stop_asked_before_the_run_was_marked_interrupted_reaches_its_owner(
    store: RunStore,
) -> None:
    asked = rec(at=0, status=RunStatus.RUNNING, owner=MINE)
    unasked = rec("ops/report", at=0, status=RunStatus.RUNNING, owner=MINE)
    theirs = rec("ops/other", at=0, status=RunStatus.RUNNING, owner=THEIRS)
    for r in (asked, unasked, theirs):
        store.claim(r)
    assert store.request_stop([asked.id, theirs.id], "Replaced") == 2
    # The owner frozen past its lease: another replica marks its runs interrupted.
    assert len(store.mark_interrupted([MINE], T0)) == 2
    assert store.get(asked.id).status is RunStatus.INTERRUPTED  # type: ignore[union-attr]

    going = [(asked.id, 1), (unasked.id, 1), (theirs.id, 1)]
    assert store.stop_requests(MINE, going) == [(asked.id, 1, "Replaced")]
    assert store.stop_requests(MINE) == []  # the running attempts only, as before
    assert store.stop_requests(MINE, [(unasked.id, 1)]) == []
    assert store.stop_requests(THEIRS, going) == [(theirs.id, 1, "Replaced")]
    assert store.stop_requests(THEIRS) == [(theirs.id, 1, "Replaced")]  # running still

    # Its owner stops it and writes its end: the request still reads while the run is going.
    store.complete(dataclasses.replace(asked, status=RunStatus.FAILED, reason="Replaced"))
    assert store.stop_requests(MINE, going) == [(asked.id, 1, "Replaced")]


def test_a_stop_asked_of_an_ended_attempt_is_not_its_retrys(store: RunStore) -> None:
    # Attempt 1 was asked to stop (a Replace elsewhere) and ended by itself (failed) before
    # its owner read the request; its retry, attempt 2, runs there now. Before, the request
    # was read for the run's id whatever the attempt, and the sweep stopped attempt 2.
    one = rec(at=0, status=RunStatus.RUNNING, owner=MINE)
    store.claim(one)
    assert store.request_stop([one.id], "Replaced") == 1
    store.complete(dataclasses.replace(one, status=RunStatus.FAILED, reason="Error"))
    two = dataclasses.replace(one, attempt=2, reason=None)
    store.claim(two)
    assert store.stop_requests(MINE, [(one.id, 2)]) == []
    assert store.stop_requests(MINE) == []
    assert store.stop_requests(MINE, [(one.id, 1)]) == [(one.id, 1, "Replaced")]  # as named


def test_many_runs_going_are_read_in_chunks(
    sql_store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_running, "STOP_IDS_AT_ONCE", 2)
    records = [rec(f"ns/t{i}", at=i, status=RunStatus.RUNNING, owner=MINE) for i in range(5)]
    for r in records:
        sql_store.claim(r)
    running = rec("ns/running", at=9, status=RunStatus.RUNNING, owner=MINE)
    sql_store.claim(running)
    asked = [records[0].id, records[3].id, records[4].id, running.id]
    assert sql_store.request_stop(asked, "Replaced") == 4
    assert len(sql_store.mark_interrupted([MINE], T0)) == 6
    sql_store.claim(dataclasses.replace(running, attempt=2, reason=None))  # its retry, here
    assert sql_store.request_stop([running.id], "Replaced") == 1
    going = [(r.id, 1) for r in records]
    reads = sql_running.stop_requests_chunked(MINE, {run for run, _ in going})
    assert len(reads) == 3  # 5 ids, 2 a statement
    assert sql_store.stop_requests(MINE, going) == sorted(
        [(records[i].id, 1, "Replaced") for i in (0, 3, 4)] + [(running.id, 2, "Replaced")]
    )


def test_the_read_goes_through_the_status_index_and_the_primary_key(
    sql_store: RunStore,
) -> None:
    """Neither the table nor the history's interrupted rows are read whole: the running rows
    through ix_runs_status_scheduled, the runs named through the primary key. SQLite without
    statistics, PostgreSQL with them."""
    assert isinstance(sql_store, SqlRunStore)
    statuses = [RunStatus.SUCCEEDED, RunStatus.INTERRUPTED, RunStatus.FAILED]
    sql_store.insert_many(
        rec(f"ns/t{i % 40}", i, statuses[i % 3], owner=MINE) for i in range(10_000)
    )
    going = [rec("ns/t1", 1).id, rec("ns/t2", 2).id]
    with sql_store.engine.begin() as conn:
        if conn.dialect.name != "sqlite":
            conn.exec_driver_sql("ANALYZE runs")  # this table only (see test_last_slots_asked)
        stmt = sql_running.stop_requests(MINE, going)
        assert isinstance(stmt, sa.Select)
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
        plan = "\n".join(str(row[-1]) for row in conn.exec_driver_sql(prefix + str(compiled)))
        assert conn.execute(stmt).all() == []
    assert "ix_runs_status_scheduled" in plan, plan
    assert "SCAN runs" not in plan, plan  # SQLite reading the table, or an index, whole
    assert "Seq Scan" not in plan, plan
    assert ("pk_runs" in plan) or ("sqlite_autoindex_runs_1" in plan), plan
