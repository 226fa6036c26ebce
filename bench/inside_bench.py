"""Start delay seen from inside the command: the real ``crontask run`` against plain
APScheduler's BackgroundScheduler + ``subprocess.run``, the same command on both sides.

    python bench/inside_bench.py --worker crontask burst N
    python bench/inside_bench.py --worker aps-bg burst N
    python bench/inside_bench.py --worker crontask per-second N [--seconds S]
    python bench/inside_bench.py --worker aps-bg per-second N [--seconds S]

Every run executes ``sh -c 'echo $(date +%s.%N) $CRONTASK_SCHEDULED_TIME'``: the instant the
command's own shell ran ``date``, and its slot as the scheduler gave it. Delay = that instant -
the slot: the scheduler's fire, the claim (crontask), the spawn, the shell's exec and start-up,
the same work on both sides but the scheduler's.

- ``burst``: N tasks all due in one second T a few seconds ahead (a daily six-field slot).
- ``per-second``: N tasks firing every second (``* * * * * *``) for S seconds; the slots of the
  first two seconds (start-up) and the last one are not counted.

``crontask``: ``python -m reconciler run DIR --state-dir ... --listen off`` with its defaults
(SQLite store, the minimal task environment); the output of each run is read back from its
record in the run store. ``aps-bg``: a ``BackgroundScheduler`` (its default pool of 10 threads,
``misfire_grace_time`` raised to 30 s so that none is dropped) whose job calls
``subprocess.run`` with the output captured and ``CRONTASK_SCHEDULED_TIME`` set to the slot
(for ``per-second``, the second the job started in: its delay is far below a second).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Json, emit, summary_ms

COMMAND = ["sh", "-c", "echo $(date +%s.%N) $CRONTASK_SCHEDULED_TIME"]
SETTLE = 15.0
START_MARGIN = 10.0  # seconds from writing the tasks to the burst's slot: crontask's start fits


def _delay(output: str) -> float | None:
    """Printed instant - slot, from one run's output line."""
    try:
        printed, slot = output.split()
    except ValueError:
        return None
    if "T" in slot:
        at = datetime.fromisoformat(slot.replace("Z", "+00:00")).timestamp()
    else:
        at = float(slot)
    return float(printed) - at


def _task(name: str, schedule: str) -> str:
    args = ", ".join(f'"{a}"' for a in COMMAND[:2]) + ', "' + COMMAND[2].replace('"', '\\"') + '"'
    return (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
        f"metadata: {{name: {name}, namespace: bench}}\n"
        f'spec:\n  schedule: "{schedule}"\n  command: {{args: [{args}]}}\n'
    )


def _slot_schedule(due: float) -> str:
    at = datetime.fromtimestamp(due, UTC)
    return f"{at.second} {at.minute} {at.hour} * * *"


def crontask(kind: str, n: int, seconds: float) -> Json:
    from reconciler.store import open_store, sqlite_url
    from reconciler.store.base import RunQuery

    with tempfile.TemporaryDirectory(prefix="bench-inside-") as tmp:
        tasks, state = Path(tmp, "tasks"), Path(tmp, "state")
        tasks.mkdir()
        due = float(math.ceil(time.time() + START_MARGIN + n / 200))
        schedule = _slot_schedule(due) if kind == "burst" else "* * * * * *"
        for i in range(n):
            (tasks / f"t{i:04d}.yaml").write_text(_task(f"t{i:04d}", schedule))
        command = [sys.executable, "-m", "reconciler", "run", str(tasks)]
        command += ["--state-dir", str(state), "--listen", "off", "--shutdown-grace", "5s"]
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        window = (due, due + 1) if kind == "burst" else (due + 2, due + seconds - 1)
        try:
            end = window[1] + (SETTLE if kind == "burst" else 2.0)
            while time.time() < end:
                if process.poll() is not None:
                    return {"error": f"crontask exited {process.returncode}"}
                time.sleep(0.2)
                if kind == "burst" and time.time() > due + 2 and _finished(state) >= n:
                    break
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        store = open_store(sqlite_url(state))
        try:
            page = store.query(RunQuery(limit=1000))
            records = list(page.items)
            while page.next_cursor is not None:
                page = store.query(RunQuery(limit=1000, cursor=page.next_cursor))
                records.extend(page.items)
        finally:
            store.close()
    delays = [
        d
        for r in records
        if window[0] <= r.scheduled_at.timestamp() < window[1]
        and (d := _delay(r.output)) is not None
    ]
    return _answer("crontask", kind, n, delays, window, n if kind == "burst" else None)


def _finished(state: Path) -> int:
    if not (state / "runs.db").exists():
        return 0
    from reconciler.store import open_store, sqlite_url
    from reconciler.store.base import RunQuery

    store = open_store(sqlite_url(state))
    try:
        return sum(1 for r in store.query(RunQuery(limit=1000)).items if r.status.finished)
    finally:
        store.close()


def aps_bg(kind: str, n: int, seconds: float) -> Json:
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    outputs: list[str] = []
    lock = threading.Lock()
    due = float(math.ceil(time.time() + 2.0 + n / 1000))

    def job() -> None:
        slot = due if kind == "burst" else float(math.floor(time.time()))
        done = subprocess.run(
            COMMAND,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env={**os.environ, "CRONTASK_SCHEDULED_TIME": f"{slot:.0f}"},
            check=False,
        )
        with lock:
            outputs.append(done.stdout)

    scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"misfire_grace_time": 30})
    at = datetime.fromtimestamp(due, UTC)
    for i in range(n):
        if kind == "burst":
            trigger = CronTrigger(second=at.second, minute=at.minute, hour=at.hour, timezone=UTC)
        else:
            trigger = CronTrigger(second="*", timezone=UTC)
        scheduler.add_job(job, trigger, id=f"job-{i}")
    scheduler.start()
    window = (due, due + 1) if kind == "burst" else (due + 2, due + seconds - 1)
    end = window[1] + (SETTLE if kind == "burst" else 2.0)
    while time.time() < end:
        time.sleep(0.1)
        if kind == "burst" and len(outputs) >= n:
            break
    scheduler.shutdown(wait=True)
    delays = []
    for out in outputs:
        try:
            slot = float(out.split()[1])
        except (IndexError, ValueError):
            continue
        if window[0] <= slot < window[1] and (d := _delay(out)) is not None:
            delays.append(d)
    return _answer("aps-bg", kind, n, delays, window, n if kind == "burst" else None)


def _answer(
    mode: str, kind: str, n: int, delays: list[float], window: tuple[float, float], want: int | None
) -> Json:
    expected = want if want is not None else n * int(window[1] - window[0])
    return {
        "mode": mode,
        "kind": kind,
        "n": n,
        "delay": summary_ms(delays),
        "runs": len(delays),
        "lost": expected - len(delays),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help="run one measurement")
    parser.add_argument("mode", choices=["crontask", "aps-bg"])
    parser.add_argument("kind", choices=["burst", "per-second"])
    parser.add_argument("n", type=int)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    measure = crontask if args.mode == "crontask" else aps_bg
    emit(measure(args.kind, args.n, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
