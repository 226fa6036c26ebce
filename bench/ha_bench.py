"""Replicas (``crontask run --ha``) measured as a user runs them: real processes on PostgreSQL.

- ``failover``: three replicas with per-second tasks; one is killed (``kill -9``) or stopped
  (SIGTERM) and restarted, ``--repeats`` times each. The failover time of one event is how long
  until *every* task the lost replica held has run on another replica (slot time of that run
  minus the instant of the kill), so it includes the membership expiry, the reassignment and
  the wait for the next slot. Median over the repeats.
- ``spread``: N tasks on one replica against 3N tasks over three replicas on the same machine
  (``* * * * *`` with ``jitterSeconds: 59``, so each replica starts N runs a minute, spread over
  the minute, running ``true``). Per replica: tasks owned, start delay p50/p99 (the run store's
  ``started_at - scheduled_at``), CPU seconds per minute.

``python bench/ha_bench.py --pg URL`` prints the table; ``--worker failover|spread`` prints the
JSON ``bench/run.py`` reads. The PostgreSQL URL defaults to ``$CRONTASK_TEST_POSTGRES_URL``;
each run works in a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, ROOT, Json, emit, median_of, percentile

PG_ENV = "CRONTASK_TEST_POSTGRES_URL"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    schema = f"crontask_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


class Replica:
    def __init__(self, name: str, work: Path, tasks: Path, db: str) -> None:
        self.name, self.work, self.tasks, self.db = name, work / name, tasks, db
        self.work.mkdir(parents=True, exist_ok=True)
        self.log = self.work / "crontask.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.offset = 0

    def start(self) -> Replica:
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "reconciler", "run", str(self.tasks), "--ha", "--db", self.db,
                 "--state-dir", str(self.work / "state"), "--listen", "off",
                 "--shutdown-grace", "5s", "--kill-grace", "1s"],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace")[self.offset :]

    def wait(self, needle: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no {needle!r} in {timeout}s")
            time.sleep(0.1)

    @property
    def prefix(self) -> str:
        assert self.proc is not None
        return f"{os.uname().nodename}:{self.proc.pid}:"

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)


def write_tasks(folder: Path, count: int, *, per_second: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    spec = (
        '  schedule: "* * * * * *"\n  concurrencyPolicy: Allow\n'
        if per_second
        else '  schedule: "* * * * *"\n  jitterSeconds: 59\n'
    )
    for start in range(0, count, 1000):
        docs = [
            "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
            f'metadata: {{name: t{i:05d}}}\nspec:\n{spec}  command: {{args: ["true"]}}\n'
            for i in range(start, min(count, start + 1000))
        ]
        (folder / f"tasks-{start:05d}.yaml").write_text("---\n".join(docs))


def runs_since(db: str, since: datetime) -> list[tuple[str, datetime, datetime | None, str]]:
    import sqlalchemy as sa

    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT task, scheduled_at, started_at, owner FROM runs "
                    "WHERE scheduled_at >= :since AND owner IS NOT NULL"
                ),
                {"since": since},
            ).all()
    finally:
        engine.dispose()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def members(replica: Replica, count: int) -> None:
    replica.wait(f'msg="replicas changed" members={count} ')


# -- failover --------------------------------------------------------------------------------


def failover(db: str, repeats: int, tasks: int) -> Json:
    rng = random.Random(7)
    with TemporaryDirectory(prefix="bench-ha-") as tmp:
        work = Path(tmp)
        write_tasks(work / "tasks", tasks, per_second=True)
        replicas = {n: Replica(n, work, work / "tasks", db).start() for n in "abc"}
        try:
            for replica in replicas.values():
                members(replica, 3)
            results: dict[str, list[float]] = {"kill": [], "term": []}
            for kind in ["kill"] * repeats + ["term"] * repeats:
                time.sleep(3)
                name = rng.choice(sorted(replicas))
                victim = replicas[name]
                held = {
                    task
                    for task, slot, _, owner in runs_since(db, _utc_now() - timedelta(seconds=2))
                    if owner.startswith(victim.prefix)
                }
                prefix = victim.prefix
                at = _utc_now()
                victim.stop(signal.SIGKILL if kind == "kill" else signal.SIGTERM)
                results[kind].append(_covered(db, held, prefix, at))
                replicas[name] = Replica(name, work, work / "tasks", db).start()
                for replica in replicas.values():
                    members(replica, 3)
        finally:
            for replica in replicas.values():
                replica.stop()
    return {
        "tasks": tasks,
        "repeats": repeats,
        "kill_s": results["kill"],
        "term_s": results["term"],
        "kill_median_s": median_of(results["kill"]),
        "term_median_s": median_of(results["term"]),
    }


def _covered(db: str, held: set[str], victim: str, at: datetime, timeout: float = 90.0) -> float:
    """Seconds from ``at`` until every task in ``held`` has run on another replica."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        first: dict[str, datetime] = {}
        for task, slot, _, owner in runs_since(db, at):
            if task in held and not owner.startswith(victim):
                first[task] = min(first.get(task, slot), slot)
        if held <= set(first):
            return max((slot - at).total_seconds() for slot in first.values())
        time.sleep(0.2)
    return float("nan")


# -- spread ----------------------------------------------------------------------------------


def spread(db: str, per_replica: int, replicas: int, seconds: float) -> Json:
    with TemporaryDirectory(prefix="bench-ha-") as tmp:
        work = Path(tmp)
        write_tasks(work / "tasks", per_replica * replicas, per_second=False)
        running = [Replica(f"r{i}", work, work / "tasks", db).start() for i in range(replicas)]
        try:
            for replica in running:
                members(replica, replicas)
                replica.wait("crontask started")
            time.sleep(5)  # the last handovers of the start-up settle
            since = _utc_now()
            cpu_before = [r.cpu_seconds() for r in running]
            time.sleep(seconds)
            cpu_after = [r.cpu_seconds() for r in running]
            until = _utc_now() - timedelta(seconds=2)
            rows = [row for row in runs_since(db, since) if row[1] <= until]
            prefixes = [r.prefix for r in running]
        finally:
            for replica in running:
                replica.stop()
    per: list[Json] = []
    for i, prefix in enumerate(prefixes):
        mine = [row for row in rows if row[3].startswith(prefix)]
        delays = [(s - at).total_seconds() for _, at, s, _ in mine if s is not None]
        per.append(
            {
                "tasks": len({row[0] for row in mine}),
                "runs": len(mine),
                "delay_p50_ms": percentile(delays, 0.5) * 1e3,
                "delay_p99_ms": percentile(delays, 0.99) * 1e3,
                "cpu_s_per_min": (cpu_after[i] - cpu_before[i]) * 60.0 / seconds,
            }
        )
    counts = [p["tasks"] for p in per]
    mean = sum(counts) / len(counts) if counts else float("nan")
    return {
        "replicas": replicas,
        "tasks": per_replica * replicas,
        "seconds": seconds,
        "per_replica": per,
        "max_over_mean": (max(counts) / mean) if mean else float("nan"),
    }


def _utc_now() -> datetime:
    return datetime.now(UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get(PG_ENV), help=f"default ${PG_ENV}")
    parser.add_argument("--worker", choices=["failover", "spread"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--failover-tasks", type=int, default=30)
    parser.add_argument("--tasks", type=int, default=10_000, help="per replica (spread)")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=70.0)
    args = parser.parse_args()
    if not args.pg:
        raise SystemExit(f"ha_bench: give --pg URL or set {PG_ENV}")
    with fresh_schema(args.pg) as db:
        if args.worker == "failover":
            emit(failover(db, args.repeats, args.failover_tasks))
            return
        if args.worker == "spread":
            emit(spread(db, args.tasks, args.replicas, args.seconds))
            return
        out = failover(db, args.repeats, args.failover_tasks)
        print(f"failover after kill -9: median {out['kill_median_s']:.1f} s {out['kill_s']}")
        print(f"failover after SIGTERM: median {out['term_median_s']:.1f} s {out['term_s']}")
    for replicas in (1, args.replicas):
        with fresh_schema(args.pg) as db:
            result = spread(db, args.tasks, replicas, args.seconds)
        print(f"{result['tasks']} tasks over {replicas}: max/mean {result['max_over_mean']:.2f}")
        for i, p in enumerate(result["per_replica"]):
            print(
                f"  replica {i}: {p['tasks']} tasks, {p['runs']} runs, start delay p50/p99 "
                f"{p['delay_p50_ms']:.0f}/{p['delay_p99_ms']:.0f} ms, "
                f"CPU {p['cpu_s_per_min']:.1f} s/min"
            )


if __name__ == "__main__":
    main()
