"""Reads over a long run history: the status page's state filter, the manual runs, a first scrape.

    python bench/page_bench.py [--tasks 1000] [--records 200] [--reps 10] [--against DIR]
    python bench/page_bench.py --worker TASKS RECORDS REPS     # for bench/run.py: JSON only

The real ``crontask run`` (SQLite store, default flags) on a folder of TASKS tasks that never
fire during the run, its store filled beforehand with RECORDS finished runs of each task (one
a minute, the newest tenth of the tasks failing at the end, one manual run in a hundred), as a
year of a busy instance leaves it. Measured over HTTP, one request at a time:

- the first ``GET /metrics`` after start (it reads how every task last ended);
- ``GET /?state=failing`` (the status page's filter: how every task it scans last ended), REPS
  times;
- ``GET /api/v1/runs?trigger=manual&limit=50`` (the newest manual runs of every task), REPS
  times.

``--against DIR`` measures a second checkout the same way, on a store filled the same way by
that checkout's code (a store is only opened by the code that wrote it: a newer schema is
refused by older code), so that a change shows as before and after in one table.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Json, emit, machine, write_tree
from api_bench import Server

REQUEST_TIMEOUT = 120.0


def fill(state: Path, tasks: int, records: int) -> None:
    """The store of ``state``, filled through the run store of the code on ``sys.path``."""
    from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
    from reconciler.store import open_store, sqlite_url
    from reconciler.store.sql import SqlRunStore

    rnd = random.Random(3)
    now = datetime.now(UTC).replace(second=0, microsecond=0)

    def generate() -> Iterator[RunRecord]:
        for r in range(records, 0, -1):
            at = now - timedelta(minutes=r)
            for t in range(tasks):
                key = f"bench/task-{t // 10:04d}-{t % 10:02d}"
                failing = (t % 10 == 0 and r <= 3) or rnd.random() < 0.05
                status = RunStatus.FAILED if failing else RunStatus.SUCCEEDED
                yield RunRecord(
                    id=run_id(key, at),
                    task=key,
                    scheduled_at=at,
                    trigger=Trigger.MANUAL if rnd.random() < 0.01 else Trigger.SCHEDULE,
                    status=status,
                    started_at=at,
                    finished_at=at + timedelta(seconds=rnd.randint(1, 50)),
                    exit_code=1 if failing else 0,
                    output="done\n" * 20,
                    owner="bench:1:boot",
                )

    store = open_store(sqlite_url(state), writer=True)
    try:
        assert isinstance(store, SqlRunStore)
        store.insert_many(generate(), batch_size=20_000)
    finally:
        store.close()


def timed_get(port: int, path: str) -> tuple[float, int]:
    import httpx

    started = time.perf_counter()
    answer = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=REQUEST_TIMEOUT)
    return time.perf_counter() - started, answer.status_code


def measure(code: Path, tasks: int, records: int, reps: int) -> Json:
    with tempfile.TemporaryDirectory(prefix="page-bench-") as tmp:
        root = Path(tmp)
        write_tree(root / "tasks", files=tasks // 10, per_file=10)
        state = root / "state"
        state.mkdir(mode=0o700)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--worker-fill", str(state), str(tasks), str(records)],
            check=True,
            env={**os.environ, "PYTHONPATH": str(code)},
        )
        filled = time.perf_counter() - started
        server = Server(root / "tasks", state, str(code))
        try:
            started = time.perf_counter()
            server.wait_ready()
            ready = time.perf_counter() - started
            scrape, _ = timed_get(server.port, "/metrics")
            page = [timed_get(server.port, "/?state=failing") for _ in range(reps)]
            manual = [
                timed_get(server.port, "/api/v1/runs?trigger=manual&limit=50") for _ in range(reps)
            ]
        finally:
            server.stop()
    statuses = sorted({status for _, status in page + manual})
    return {
        "fill_s": filled,
        "ready_s": ready,
        "first_scrape_s": scrape,
        "page_failing_s": [seconds for seconds, _ in page],
        "manual_runs_s": [seconds for seconds, _ in manual],
        "statuses": statuses,
    }


def _p50_max(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:,.0f} / {max(samples) * 1e3:,.0f} ms"


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--worker-fill":
        fill(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":  # bench/run.py's: JSON only
        tasks, records, reps = map(int, sys.argv[2:])
        emit(measure(ROOT, tasks, records, reps))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--records", type=int, default=200, help="finished runs per task")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--against", type=Path, help="another checkout, measured the same way")
    args = parser.parse_args()
    sides = {"this tree": ROOT}
    if args.against:
        sides[f"{args.against}"] = args.against.resolve()
    results = {
        name: measure(code, args.tasks, args.records, args.reps) for name, code in sides.items()
    }
    rows = args.tasks * args.records
    print(f"\nreads over a history of {rows:,} runs ({args.tasks} tasks x {args.records}), SQLite")
    names = list(results)
    print(f"{'measure':<42}" + "".join(f"{n[-24:]:>26}" for n in names))

    def line(label: str, values: list[str]) -> None:
        print(f"{label:<42}" + "".join(f"{v:>26}" for v in values))

    line("start until ready", [f"{results[n]['ready_s']:.1f} s" for n in names])
    line("first /metrics scrape", [f"{results[n]['first_scrape_s'] * 1e3:,.0f} ms" for n in names])
    for key, label in (
        ("page_failing_s", "/?state=failing"),
        ("manual_runs_s", "runs?trigger=manual"),
    ):
        line(
            f"{label} p50 / max",
            [_p50_max(results[n][key]) for n in names],
        )
    line("HTTP statuses", [",".join(map(str, results[n]["statuses"])) for n in names])
    emit({"machine": machine(), "tasks": args.tasks, "records": args.records, "results": results})


if __name__ == "__main__":
    main()
