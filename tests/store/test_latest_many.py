"""``RunStore.latest_many``: each task's newest record (what ``latest`` gives, without its
output) for many tasks in a few queries. What the task list of a replica shows of the tasks
other replicas run (``controller.service``): read a task at a time, a list of 10 000 tasks
took 15-39 s instead of 2.5 s."""

from __future__ import annotations

import dataclasses
import json
import random

import sqlalchemy as sa

from reconciler.core.runs import RunRecord, RunStatus, Trigger
from reconciler.store import RunStore, sql_summaries
from reconciler.store.sql import SqlRunStore
from reconciler.store.sql_rows import record_to_row
from reconciler.store.sql_schema import runs

from ._records import rec


def _bare(record: RunRecord | None) -> RunRecord | None:
    return None if record is None else dataclasses.replace(record, output="")


def test_each_task_asked_has_what_latest_gives_without_its_output(store: RunStore) -> None:
    rng = random.Random(20261204)  # noqa: S311 - a reproducible history, not a secret
    tasks = [f"ns{i % 3}/t{i:02d}" for i in range(12)]
    records: list[RunRecord] = []
    for task in tasks:
        for minute in rng.sample(range(100), rng.randint(0, 6)):
            status = rng.choice(list(RunStatus))
            trigger = rng.choice([Trigger.SCHEDULE, Trigger.MANUAL, Trigger.CATCHUP])
            records.append(rec(task, minute, status, trigger=trigger, output="out " * 50))
            if rng.random() < 0.3:  # retried: the higher attempt is the newer record
                records.append(
                    rec(task, minute, RunStatus.RUNNING, attempt=2, trigger=Trigger.RETRY)
                )
    # Two runs of one slot (a manual run's id is its own): the greater id is the newer.
    records += [rec("edge/same-slot", 5), rec("edge/same-slot", 5, id="edge.same-slot.zz")]
    store.save_many(records)
    everyone = [*sorted({r.task for r in records}), "ns0/never-ran"]
    whole = {task: _bare(store.latest(task)) for task in everyone}
    same_slot = whole["edge/same-slot"]
    assert same_slot is not None
    assert same_slot.id.endswith("zz")
    assert store.latest_many(everyone) == {t: r for t, r in whole.items() if r is not None}
    for size in (0, 1, 3):
        asked = rng.sample(everyone, size) + rng.sample(everyone, min(size, 2))  # repeats
        assert store.latest_many(asked) == {t: whole[t] for t in asked if whole[t] is not None}
    assert all(r.output == "" for r in store.latest_many(everyone).values())


def test_more_tasks_than_one_query_takes_are_all_answered(store: RunStore) -> None:
    names = [f"many/t{i:05d}" for i in range(sql_summaries._KEYS_PER_QUERY + 500)]
    ran = [0, sql_summaries._KEYS_PER_QUERY - 1, sql_summaries._KEYS_PER_QUERY, len(names) - 1]
    store.save_many([rec(names[i], at=i % 50 + 1) for i in ran])
    expected = {names[i]: rec(names[i], at=i % 50 + 1) for i in ran}
    assert store.latest_many(names) == expected
    assert store.latest_many(tuple(reversed(names))) == expected


def test_a_row_this_version_cannot_read_is_passed_over_as_latest_does(
    sql_store: RunStore,
) -> None:
    """A newer crontask's status on the task's newest row: the row before it is the answer
    (``sql_rows.READABLE``), as ``latest`` gives it."""
    assert isinstance(sql_store, SqlRunStore)
    sql_store.save_many([rec("ops/a", 1), rec("ops/b", 1)])
    with sql_store.engine.begin() as conn:
        conn.execute(runs.insert().values({**record_to_row(rec("ops/a", 2)), "status": "zzz"}))
    assert sql_store.latest_many(["ops/a", "ops/b"]) == {
        "ops/a": rec("ops/a", 1),
        "ops/b": rec("ops/b", 1),
    }
    assert sql_store.latest("ops/a") == rec("ops/a", 1)


def test_a_tasks_newest_record_is_read_at_the_end_of_its_index_range(
    sql_store: RunStore,
) -> None:
    """Each task asked is one look at the end of ix_runs_task_scheduled and one row read by
    its key: no sort of the task's records, no read of the table, however long its history.
    SQLite without statistics, PostgreSQL with them."""
    assert isinstance(sql_store, SqlRunStore)
    store = sql_store
    records = [rec(f"ns/t{i % 40}", i) for i in range(10_000)]
    store.insert_many(records)
    with store.engine.begin() as conn:
        dialect = conn.dialect.name
        if dialect != "sqlite":
            conn.exec_driver_sql("ANALYZE runs")  # this table only (see test_last_slots_asked)
        asked = ["ns/t3", "ns/t4"]
        stmt = sql_summaries._newest_records(dialect).params(
            asked=json.dumps(asked) if dialect == "sqlite" else asked
        )
        # And ``latest``'s, one task's: PostgreSQL sorted the task's whole history.
        plans = [_explain(conn, stmt), _explain(conn, sql_summaries._newest_record("ns/t3"))]
    for plan in plans:
        assert "ix_runs_task_scheduled" in plan, plan
        assert "SCAN runs" not in plan, plan  # SQLite reading the table, or an index, whole
        assert "TEMP B-TREE" not in plan, plan  # SQLite sorting the task's records
        if dialect != "sqlite":
            assert "Index Scan Backward using ix_runs_task_scheduled" in plan, plan
            assert "Seq Scan" not in plan, plan
            assert "Sort" not in plan, plan
    assert store.latest_many(asked) == {t: _bare(store.latest(t)) for t in asked}


def _explain(conn: sa.Connection, stmt: sa.Select[object]) -> str:
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
    return "\n".join(str(row[-1]) for row in conn.exec_driver_sql(prefix + str(compiled)))
