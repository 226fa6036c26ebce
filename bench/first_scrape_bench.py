"""The first /metrics scrape after a start, in-process: each task's last outcomes read from a
SQLite run store, then the exposition, without a `crontask run` around it.

    python bench/first_scrape_bench.py TASKS [--runs-per-task R] [--store DIR] [--repeats K]

The store (a fresh temporary one unless ``--store`` names a folder, which is filled once and
then reused) holds R records per task, one in seven failed. Each repeat builds a new
``Metrics`` over TASKS tasks and renders it twice, gzip, as Prometheus asks: the first render
reads every task's last success, failure and duration from the store, the second does not.
One JSON line: the seconds of each. To compare two trees, run it with ``PYTHONPATH`` set to
each, one after the other (the code is imported from there). ``metrics_bench.py --restart``
measures the same scrape through a real `crontask run` and HTTP. Repeats in one process vary
more than processes do (the collector meets the earlier ones' objects): to compare, run it
several times, alternating.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Json, emit

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _keys(tasks: int) -> list[str]:
    return [f"bench/job-{i:06d}" for i in range(tasks)]


def fill(store_dir: Path, tasks: int, runs_per_task: int) -> float:
    """Seconds to write the history; 0 if the store holds one already."""
    from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
    from reconciler.store import open_store, sqlite_url
    from reconciler.store.sql import SqlRunStore

    store = open_store(sqlite_url(store_dir), writer=True)
    try:
        assert isinstance(store, SqlRunStore)
        if store.last_slots():
            return 0.0

        def records() -> Iterator[RunRecord]:
            for i, task in enumerate(_keys(tasks)):
                for k in range(runs_per_task):
                    at = T0 + timedelta(minutes=k)
                    failed = (i + k) % 7 == 0
                    yield RunRecord(
                        id=run_id(task, at),
                        task=task,
                        scheduled_at=at,
                        trigger=Trigger.SCHEDULE,
                        status=RunStatus.FAILED if failed else RunStatus.SUCCEEDED,
                        started_at=at,
                        finished_at=at + timedelta(seconds=2),
                        exit_code=1 if failed else 0,
                        owner="bench",
                    )

        began = time.perf_counter()
        store.insert_many(records())
        return time.perf_counter() - began
    finally:
        store.close()


def scrapes(store_dir: Path, tasks: int, repeats: int) -> tuple[list[float], list[float]]:
    from reconciler.core.desired import Definition, Location
    from reconciler.core.model import CronTask
    from reconciler.sinks.metrics import MemoryTasks, Metrics
    from reconciler.store import open_store, sqlite_url

    slots = MemoryTasks()
    for key in _keys(tasks):
        name = key.split("/")[1]
        task = CronTask.model_validate(
            {
                "apiVersion": "crontask.dev/v1alpha1",
                "kind": "CronTask",
                "metadata": {"name": name, "namespace": "bench"},
                "spec": {"schedule": "*/5 * * * *", "command": {"args": ["true"]}},
            }
        )
        slots.set(Definition.of(task, Location("bench", name, 1, 1)), T0, 300.0)
    store = open_store(sqlite_url(store_dir))
    first: list[float] = []
    second: list[float] = []
    try:
        for _ in range(repeats):
            metrics = Metrics(slots, history=store)
            for times in (first, second):
                began = time.perf_counter()
                metrics.render("gzip")
                times.append(time.perf_counter() - began)
    finally:
        store.close()
    return first, second


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tasks", type=int)
    parser.add_argument("--runs-per-task", type=int, default=3)
    parser.add_argument("--store", type=Path, help="a folder to keep the filled store in")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        store_dir = args.store or Path(scratch)
        filled = fill(store_dir, args.tasks, args.runs_per_task)
        first, second = scrapes(store_dir, args.tasks, args.repeats)
    result: Json = {
        "tasks": args.tasks,
        "runs_per_task": args.runs_per_task,
        "fill_s": round(filled, 2),
        "first_scrape_s": [round(t, 3) for t in first],
        "second_scrape_s": [round(t, 3) for t in second],
    }
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
