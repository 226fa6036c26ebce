"""``RunStore.last_slots`` for the tasks asked: each task's newest slot, as the whole history's
answer gives it, read from the end of the task's index range. A replica taking tasks over asks
for its own (``controller.cluster``): the grouped read of the whole history it did before held
up its new assignment, a second at a million runs, while the tasks coming to it were scheduled
by nobody."""

from __future__ import annotations

import json
import random
from datetime import datetime

import pytest
import sqlalchemy as sa

from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.store import RunStore, sql_summaries
from reconciler.store.sql import SqlRunStore

from ._records import rec


def _slots(records: list[RunRecord]) -> dict[str, datetime]:
    """The answer worked out from the records: a run is of a slot when its first attempt is
    there and is not manual (its retries record ``retry``)."""
    first = {r.id: r.trigger for r in records if r.attempt == 1}
    found: dict[str, datetime] = {}
    for r in records:
        if first.get(r.id, Trigger.MANUAL) is not Trigger.MANUAL:
            found[r.task] = max(r.scheduled_at, found.get(r.task, r.scheduled_at))
    return found


def _history(rng: random.Random, tasks: list[str]) -> list[RunRecord]:
    """Runs of the schedule, catch-ups and manual runs, some failed and retried, a few retries
    whose first attempt is gone (pruned while they waited); every task's newest run drawn too,
    so that some end with manual runs and their retries, which are no slots."""
    records: list[RunRecord] = []
    for task in tasks:
        minute = 0
        for _ in range(rng.randint(0, 25)):
            minute += rng.randint(1, 4)
            trigger = rng.choice([Trigger.SCHEDULE] * 3 + [Trigger.CATCHUP, Trigger.MANUAL] * 2)
            attempts = 1 + (rng.randint(1, 3) if rng.random() < 0.3 else 0)
            kept = 2 if attempts > 1 and rng.random() < 0.15 else 1
            for attempt in range(kept, attempts + 1):
                failed = attempt < attempts
                records.append(
                    rec(
                        task,
                        minute,
                        RunStatus.FAILED if failed else RunStatus.SUCCEEDED,
                        attempt=attempt,
                        trigger=trigger if attempt == 1 else Trigger.RETRY,
                        exit_code=1 if failed else 0,
                    )
                )
    return records


def test_the_tasks_asked_have_the_slots_the_whole_history_gives(store: RunStore) -> None:
    rng = random.Random(20261204)  # noqa: S311 - a reproducible history, not a secret
    tasks = [f"ns{i % 3}/t{i:02d}" for i in range(12)]
    records = _history(rng, tasks)
    # And the cases a draw may miss: a task whose newest runs are a manual run and its retry
    # (read back to the slot before them), one with manual runs only, one whose newest record
    # is a retry of a run whose first attempt is gone, one retried after its slot.
    records += [
        rec("edge/manual-last", 1),
        rec("edge/manual-last", 2, RunStatus.FAILED, trigger=Trigger.MANUAL),
        rec("edge/manual-last", 2, attempt=2, trigger=Trigger.RETRY),
        rec("edge/manual-only", 1, trigger=Trigger.MANUAL),
        rec("edge/manual-only", 1, attempt=2, trigger=Trigger.RETRY),
        rec("edge/lone-retry", 1),
        rec("edge/lone-retry", 2, attempt=2, trigger=Trigger.RETRY),
        rec("edge/retried", 1, RunStatus.FAILED),
        rec("edge/retried", 1, attempt=2, trigger=Trigger.RETRY),
    ]
    store.save_many(records)
    whole = store.last_slots()
    assert whole == _slots(records)
    assert {k: v for k, v in whole.items() if k.startswith("edge/")} == {
        "edge/manual-last": rec(at=1).scheduled_at,
        "edge/lone-retry": rec(at=1).scheduled_at,
        "edge/retried": rec(at=1).scheduled_at,
    }
    everyone = [*sorted({r.task for r in records}), "ns0/never-ran", "edge/unknown"]
    for size in (0, 1, 3, len(everyone)):
        for _ in range(4):
            asked = rng.sample(everyone, size) + rng.sample(everyone, min(size, 2))  # repeats
            assert store.last_slots(asked) == {t: whole[t] for t in asked if t in whole}
    assert store.last_slots({"edge/retried"}) == {"edge/retried": whole["edge/retried"]}


def test_more_tasks_than_one_query_takes_are_all_answered(store: RunStore) -> None:
    """Tasks are asked a chunk at a time (a bound on one statement's work): those with runs on
    either side of a chunk's edge are all answered, those never run are left out."""
    names = [f"many/t{i:05d}" for i in range(sql_summaries._KEYS_PER_QUERY + 500)]
    ran = [0, sql_summaries._KEYS_PER_QUERY - 1, sql_summaries._KEYS_PER_QUERY, len(names) - 1]
    store.save_many([rec(names[i], at=i % 50 + 1) for i in ran])
    store.save_many([rec(names[i], at=i % 50 + 60, trigger=Trigger.MANUAL) for i in ran])
    expected = {names[i]: rec(at=i % 50 + 1).scheduled_at for i in ran}
    assert store.last_slots(names) == expected
    assert store.last_slots(tuple(reversed(names))) == expected


@pytest.mark.slow
def test_a_tasks_newest_slot_is_read_at_the_end_of_its_index_range(sql_store: RunStore) -> None:
    """Each task asked is looked up in ix_runs_task_scheduled, read backwards from the newest
    record: no sort of the task's records, no read of the table. SQLite without statistics
    (crontask never runs ANALYZE there), PostgreSQL with them (autovacuum gathers them)."""
    assert isinstance(sql_store, SqlRunStore)
    store = sql_store
    records: list[RunRecord] = []
    for i in range(10_000):
        task, manual = f"ns/t{i % 40}", i % 100 == 0
        records.append(rec(task, i, trigger=Trigger.MANUAL if manual else Trigger.SCHEDULE))
        if i % 37 == 0:
            records.append(rec(task, i, attempt=2, trigger=Trigger.RETRY))
    store.insert_many(records)
    with store.engine.begin() as conn:
        dialect = conn.dialect.name
        if dialect != "sqlite":
            # This table only: a bare ANALYZE reads every table of the database, those other
            # workers' tests are dropping too.
            conn.exec_driver_sql("ANALYZE runs")
        asked = ["ns/t3", "ns/t4"]
        stmt = sql_summaries._newest_slots(dialect).params(
            asked=json.dumps(asked) if dialect == "sqlite" else asked
        )
        plan = _explain(conn, stmt)
    assert "ix_runs_task_scheduled" in plan, plan
    assert "SCAN runs" not in plan, plan  # SQLite reading the table, or an index, whole
    assert "TEMP B-TREE" not in plan, plan  # SQLite sorting the task's records
    if dialect != "sqlite":
        assert "Index Scan Backward using ix_runs_task_scheduled" in plan, plan
        assert "Seq Scan" not in plan, plan
        assert "Sort" not in plan, plan
    slots = _slots(records)
    assert store.last_slots(asked) == {t: slots[t] for t in asked}


def _explain(conn: sa.Connection, stmt: sa.Select[object]) -> str:
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
    return "\n".join(str(row[-1]) for row in conn.exec_driver_sql(prefix + str(compiled)))
