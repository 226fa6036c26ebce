"""Run store benchmark: bulk fill, single claim+complete throughput, and history query latency.

    python bench/store_bench.py [--rows N] [--db URL] [--reps R]

Without ``--db`` it uses a fresh SQLite file in a temporary directory (deleted afterwards). With
a PostgreSQL ``--db`` it works in a fresh schema of its own, dropped at the end, so that runs
never meet each other's rows.

It fills the store with N finished runs of 200 tasks spread over one year (bulk, through
``SqlRunStore.insert_many``), then measures, through the public API:

- claim+complete of single runs (one claim and one complete per run, each its own transaction);
- the runtime's batched path: ``claim_many`` then ``save_many`` of 500 runs at a time;
- ``query(RunQuery(task=..., limit=50))``: the last 50 runs of one task;
- ``query(RunQuery(status=failed, since=now-1h))``: failures in the last hour;
- ``query`` of the second page of a task (keyset cursor);
and prints the query plans, which should be index scans with no sort.

Not collected by pytest (testpaths is ``tests/``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import RunQuery, open_store, sqlite_url
from reconciler.store.sql import SqlRunStore
from reconciler.store.sql_pages import select_page

TASKS = 200
SPAN = timedelta(days=365)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
STATUSES = [
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.TIMED_OUT,
    RunStatus.SKIPPED,
    RunStatus.INTERRUPTED,
]
WEIGHTS = [85, 8, 3, 3, 1]
OUTPUT = "backup finished: 1234 files, 56 MiB\n" * 4


def task_key(n: int) -> str:
    return f"bench/task-{n:03d}"


def generate(rows: int, seed: int = 1) -> Iterator[RunRecord]:
    """``rows`` finished runs, oldest first, evenly spread over SPAN ending at NOW."""
    rnd = random.Random(seed)
    step = SPAN / rows
    start = NOW - SPAN
    for i in range(rows):
        at = start + step * i
        at = at.replace(microsecond=0) if step >= timedelta(seconds=1) else at
        task = task_key(i % TASKS)
        status = rnd.choices(STATUSES, WEIGHTS)[0]
        yield RunRecord(
            id=run_id(task, at),
            task=task,
            scheduled_at=at,
            trigger=Trigger.SCHEDULE,
            status=status,
            started_at=at + timedelta(milliseconds=20),
            finished_at=at + timedelta(seconds=rnd.randint(1, 120)),
            exit_code=0 if status is RunStatus.SUCCEEDED else 1,
            reason=None if status is RunStatus.SUCCEEDED else "NonZeroExit",
            output=OUTPUT,
            owner="bench:1:boot",
        )


def timed(fn: Callable[[], object], reps: int) -> list[float]:
    fn()  # warm the plan cache and the page cache
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def explain(store: SqlRunStore, q: RunQuery) -> str:
    compiled = select_page(q).compile(
        dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}
    )
    prefix = "EXPLAIN QUERY PLAN " if store.engine.dialect.name == "sqlite" else "EXPLAIN "
    with store.engine.connect() as conn:
        return "\n".join("    " + str(r[-1]) for r in conn.exec_driver_sql(prefix + str(compiled)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", help="store URL (default: a temporary SQLite file)")
    parser.add_argument("--reps", type=int, default=200, help="repetitions per query")
    parser.add_argument("--claims", type=int, default=2000, help="single claim+complete runs")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp, _isolated(args.db) as db:
        url = db or sqlite_url(Path(tmp))
        store = open_store(url)
        if not isinstance(store, SqlRunStore):
            parser.error("the benchmark needs a SQL store URL")
        try:
            return run(store, args.rows, args.reps, args.claims)
        finally:
            store.close()


@contextlib.contextmanager
def _isolated(url: str | None) -> Iterator[str | None]:
    """A PostgreSQL URL whose connections see only a fresh schema, dropped afterwards: the
    benchmark writes fixed run ids and a million rows, which must not meet an earlier run's."""
    if url is None or not url.startswith("postgresql"):
        yield url
        return
    schema = f"store_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def run(store: SqlRunStore, rows: int, reps: int, claims: int) -> int:
    backend = store.engine.dialect.name
    results: list[tuple[str, str]] = []
    print(f"backend: {backend}  rows: {rows:,}  tasks: {TASKS}", file=sys.stderr)

    started = time.perf_counter()
    inserted = store.insert_many(generate(rows), batch_size=20_000)
    fill = time.perf_counter() - started
    results.append(("bulk insert (insert_many, 20k/batch)", f"{inserted / fill:,.0f} runs/s"))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")  # what autovacuum / PRAGMA optimize would do in time

    # Single claim+complete through the public API: two transactions per run, like the runner.
    started = time.perf_counter()
    for i in range(claims):
        at = NOW + timedelta(minutes=i + 1)
        record = RunRecord(
            id=run_id("bench/single", at),
            task="bench/single",
            scheduled_at=at,
            trigger=Trigger.SCHEDULE,
            status=RunStatus.RUNNING,
            started_at=at,
            owner="bench:1:boot",
        )
        store.claim(record)
        store.complete(record.finish(RunStatus.SUCCEEDED, finished_at=at, output=OUTPUT))
    single = time.perf_counter() - started
    results.append(("claim+complete (single runs, public API)", f"{claims / single:,.0f} runs/s"))

    # The runtime's path: the claims of slots due together go in one claim_many (one loop turn
    # of the recorder), and the final records of runs ending together in one save_many.
    batch = 500
    started = time.perf_counter()
    for offset in range(0, claims, batch):
        records = [
            RunRecord(
                id=run_id("bench/batched", NOW + timedelta(minutes=i + 1)),
                task="bench/batched",
                scheduled_at=NOW + timedelta(minutes=i + 1),
                trigger=Trigger.SCHEDULE,
                status=RunStatus.RUNNING,
                started_at=NOW + timedelta(minutes=i + 1),
                owner="bench:1:boot",
            )
            for i in range(offset, min(offset + batch, claims))
        ]
        assert all(store.claim_many(records))
        store.save_many(
            [
                r.finish(RunStatus.SUCCEEDED, finished_at=r.scheduled_at, output=OUTPUT)
                for r in records
            ]
        )
    batched = time.perf_counter() - started
    results.append(
        (
            f"claim_many + save_many ({batch}/batch), as the runtime records",
            f"{claims / batched:,.0f} runs/s",
        )
    )

    queries = {
        "last 50 runs of one task": RunQuery(task=task_key(7), limit=50),
        "failures in the last hour": RunQuery(
            status=RunStatus.FAILED, since=NOW - timedelta(hours=1), limit=50
        ),
        "last 50 runs, all tasks": RunQuery(limit=50),
    }
    first = store.query(queries["last 50 runs of one task"])
    queries["next 50 runs of one task (cursor)"] = RunQuery(
        task=task_key(7), limit=50, cursor=first.next_cursor
    )
    plans = []
    for name, q in queries.items():
        found = len(store.query(q).items)
        samples = timed(functools.partial(store.query, q), reps)
        results.append(
            (
                f"{name} ({found} rows)",
                f"median {statistics.median(samples) * 1e3:.2f} ms, "
                f"p99 {p(samples, 0.99) * 1e3:.2f} ms",
            )
        )
        plans.append(f"  {name}:\n{explain(store, q)}")

    # The status page's state filter and the first /metrics scrape: how every task last ended.
    every = [task_key(n) for n in range(TASKS)]
    found = len(store.last_outcomes(every))
    samples = timed(functools.partial(store.last_outcomes, every), max(3, reps // 20))
    results.append(
        (
            f"last outcomes of all {found} tasks (page state filter, first scrape)",
            f"median {statistics.median(samples) * 1e3:.2f} ms, "
            f"p99 {p(samples, 0.99) * 1e3:.2f} ms",
        )
    )

    started = time.perf_counter()
    pruned = store.prune({task_key(n): (3, 1) for n in range(TASKS)}, timedelta(days=90), NOW)
    results.append(
        (
            "prune (200 tasks at limits 3/1, max_age 90d)",
            f"{time.perf_counter() - started:.2f} s, {pruned:,} rows deleted",
        )
    )

    width = max(len(name) for name, _ in results)
    print(f"\nrun store benchmark: {backend}, {rows:,} runs")
    print(f"{'measure':<{width}}  result")
    print(f"{'-' * width}  {'-' * 40}")
    for name, value in results:
        print(f"{name:<{width}}  {value}")
    print("\nquery plans:")
    print("\n".join(plans))
    return 0


if __name__ == "__main__":
    sys.exit(main())
