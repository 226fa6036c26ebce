"""``/metrics`` at scale, against the real ``crontask run``: size, scrape time, and what scraping
does to the start of per-second tasks.

    python bench/metrics_bench.py --worker TASKS [--scrapes K] [--window S] [--windows W]
                                  [--per-second P] [--restart] [--code DIR]
                                  [--run-arg=ARG ...]

One ``crontask run`` process (``python -m reconciler run``, SQLite state in a temp folder, the
API on a free loopback port) is given TASKS tasks in TASKS/10 files plus P tasks firing every
second (``* * * * * *`` running ``true``). Each of the TASKS tasks has one slot, in the first
minute or so after start-up (spread evenly, 250 per second), and the command
``sh -c 'test "$CRONTASK_ATTEMPT" = 2'`` with ``retry: {limit: 1, backoffSeconds: 0}``: its
first attempt fails and its retry succeeds, so after that phase every task has a success, a
failure and a duration, as a task in steady state has (its next slot is a year away).

Then, in that process:

1. ``/metrics`` is fetched K times with ``Accept-Encoding: gzip`` (what Prometheus sends) and K
   times without, alternately, one after the other: the body size in each encoding, the client's
   wall time per scrape (request sent to last byte read) as p50 / p99 / max, the number of
   samples per task, and any ``_created`` sample or task-labelled histogram bucket.
2. W windows of S seconds (none with ``--windows 0``) alternate between "not scraped" and
   "scraped every second" (gzip; a scrape starts on each whole second unless the previous one
   is still running, as Prometheus does for one target), starting with "not scraped". The
   start delay of the per-second tasks is read from the run store afterwards: ``started_at -
   scheduled_at`` of every run whose slot is in a window (its first second excluded), i.e. how
   late the run's process started. Skipped runs in each window are counted.

3. With ``--restart``, crontask is stopped and started again on the same state: the time of the
   first scrape after the start, which reads every task's last success, last failure and last
   duration from the run store, of the one after it, and how many bench tasks the first one
   shows all three for (all of them: they come from the history, not from runs seen since the
   start).

``--code DIR`` runs crontask from another source tree (``PYTHONPATH=DIR``), e.g. an export of an
earlier commit, to measure before and after with the same harness.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import queue
import re
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Json, emit, start_crontask, stop_crontask, summary_ms

PER_FILE = 10
FIRE_RATE = 250  # task slots per second in the run phase (two `sh` spawns each)
START_TIMEOUT = 300.0
PREFIX = "t-"
TICK_PREFIX = "tick-"

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
_TASK = re.compile(r'task="([^"]*)"')
# What the first scrape after a restart reads from the run history, per task.
_OUTCOMES = (
    "crontask_task_last_success_",
    "crontask_task_last_failure_",
    "crontask_task_last_run_duration_",
)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- the task tree -----------------------------------------------------------------------------


def _document(name: str, schedule: str, args: str, extra: str = "") -> str:
    return (
        "apiVersion: crontask.dev/v1alpha1\n"
        "kind: CronTask\n"
        "metadata:\n"
        f"  name: {name}\n"
        "  namespace: bench\n"
        "spec:\n"
        f'  schedule: "{schedule}"\n'
        "  timeoutSeconds: 600\n"
        f"{extra}"
        "  command:\n"
        f"    args: {args}\n"
    )


def write_tasks(root: Path, tasks: int, per_second: int, first_slot: datetime) -> datetime:
    """The tree described in the module docstring; returns the last slot of the run phase."""
    root.mkdir(parents=True)
    last = first_slot
    for f in range(tasks // PER_FILE):
        docs = []
        for t in range(PER_FILE):
            i = f * PER_FILE + t
            at = first_slot + timedelta(seconds=i // FIRE_RATE)
            last = max(last, at)
            # One slot a year: second, minute, hour, day, month (UTC).
            schedule = f"{at.second} {at.minute} {at.hour} {at.day} {at.month} *"
            docs.append(
                _document(
                    f"{PREFIX}{i:05d}",
                    schedule,
                    '["sh", "-c", "test \\"$CRONTASK_ATTEMPT\\" = 2"]',
                    "  retry: {limit: 1, backoffSeconds: 0}\n",
                )
            )
        (root / f"tasks-{f:04d}.yaml").write_text("---\n".join(docs))
    ticks = [_document(f"{TICK_PREFIX}{i}", "* * * * * *", '["true"]') for i in range(per_second)]
    (root / "ticks.yaml").write_text("---\n".join(ticks))
    return last


# -- the process and its log ------------------------------------------------------------------


class Crontask:
    def __init__(self, root: Path, state: Path, port: int, code: Path, extra: list[str]) -> None:
        self.port = port
        self.lines: queue.Queue[str] = queue.Queue()
        self.succeeded = 0  # "run finished" lines with status=succeeded for the bench tasks
        self._lock = threading.Lock()
        args = [
            str(root),
            "--state-dir",
            str(state),
            "--listen",
            f"127.0.0.1:{port}",
            "--shutdown-grace",
            "5s",
            *extra,
        ]
        self.process = start_crontask(args, code=code)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in iter(self.process.stderr.readline, ""):
            if 'msg="run finished"' in line:
                if "status=succeeded" in line and f"task=bench/{PREFIX}" in line:
                    with self._lock:
                        self.succeeded += 1
                continue
            if "level=error" in line or 'msg="crontask started"' in line:
                self.lines.put(line)
        self.lines.put("")

    def wait_started(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return False
            if not line:
                return False
            if 'msg="crontask started"' in line:
                return True
        return False

    def stop(self) -> None:
        stop_crontask(self.process, 60)


# -- scraping ----------------------------------------------------------------------------------


# A little over crontask's reuse of a rendered /metrics body (routes_metrics.REUSE_SECONDS).
RENDER_REUSE_S = 1.1


class Scraper:
    """One keep-alive connection, as Prometheus keeps one per target."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection: http.client.HTTPConnection | None = None

    def scrape(self, compressed: bool) -> tuple[float, int, bytes]:
        """(seconds, bytes on the wire, decoded body)."""
        headers = {"Accept": "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"}
        if compressed:
            headers["Accept-Encoding"] = "gzip"
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            began = time.perf_counter()
            try:
                self.connection.request("GET", "/metrics", headers=headers)
                response = self.connection.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException):
                self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise
                continue
            seconds = time.perf_counter() - began
            if response.status != 200:
                raise RuntimeError(f"/metrics answered {response.status}")
            body = gzip.decompress(raw) if response.getheader("Content-Encoding") == "gzip" else raw
            return seconds, len(raw), body
        raise AssertionError("unreachable")


def analyse(body: bytes) -> Json:
    """Samples, samples per bench task, ``_created`` samples, task-labelled buckets."""
    samples = created = task_buckets = 0
    per_task: dict[str, int] = {}
    names: dict[str, set[str]] = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        found = _LINE.match(line)
        if found is None:
            continue
        samples += 1
        name = found.group(1)
        labels = found.group(2) or ""
        if name.endswith("_created"):
            created += 1
        task = _TASK.search(labels)
        if task is None:
            continue
        if name.endswith("_bucket"):
            task_buckets += 1
        if task.group(1).startswith(f"bench/{PREFIX}"):
            per_task[task.group(1)] = per_task.get(task.group(1), 0) + 1
            names.setdefault(task.group(1), set()).add(name)
    counts = sorted(per_task.values())
    return {
        "samples": samples,
        "tasks_seen": len(per_task),
        "samples_per_task_min": counts[0] if counts else 0,
        "samples_per_task_max": counts[-1] if counts else 0,
        "created": created,
        "task_buckets": task_buckets,
        "names_of_one_task": sorted(next(iter(names.values()), set())),
    }


def with_outcomes(body: bytes) -> int:
    """Bench tasks with a last-success, a last-failure and a last-duration sample."""
    seen: dict[str, int] = {}
    for line in body.decode().splitlines():
        if line.startswith(_OUTCOMES):
            task = _TASK.search(line)
            if task is not None and task.group(1).startswith(f"bench/{PREFIX}"):
                seen[task.group(1)] = seen.get(task.group(1), 0) + 1
    return sum(1 for count in seen.values() if count == len(_OUTCOMES))


def after_a_restart(root: Path, state: Path, code: Path, extra: list[str]) -> Json:
    """Start crontask again on ``state``: its start-up, and its first two scrapes."""
    port = free_port()
    spawned = time.time()
    app = Crontask(root, state, port, code, extra)
    try:
        if not app.wait_started():
            return {"error": "crontask run did not start again"}
        startup = time.time() - spawned
        scraper = Scraper(port)
        first, _, body = scraper.scrape(compressed=True)
        second, _, _ = scraper.scrape(compressed=True)
    finally:
        app.stop()
    return {
        "startup_s": startup,
        "first_scrape_ms": first * 1000,
        "second_scrape_ms": second * 1000,
        "tasks_with_outcomes": with_outcomes(body),
    }


def scrape_every_second(port: int, until: float, done: list[float]) -> None:
    scraper = Scraper(port)
    while (now := time.time()) < until:
        time.sleep(max(0.0, 1.0 - now % 1.0))  # the next whole second
        if time.time() >= until:
            break
        seconds, _, _ = scraper.scrape(compressed=True)
        done.append(seconds)


# -- the measurement ---------------------------------------------------------------------------


def start_delays(state: Path, windows: list[tuple[str, float, float]], ticks: int) -> Json:
    from reconciler.core.runs import RunStatus
    from reconciler.store import open_store, sqlite_url
    from reconciler.store.base import RunQuery

    store = open_store(sqlite_url(state))
    delays: dict[str, list[float]] = {"unscraped": [], "scraped": []}
    skipped: dict[str, int] = {"unscraped": 0, "scraped": 0}
    try:
        for kind, began, ended in windows:
            since = datetime.fromtimestamp(began + 1, UTC)
            until = datetime.fromtimestamp(ended, UTC)
            for i in range(ticks):
                cursor: str | None = None
                while True:
                    page = store.query(
                        RunQuery(
                            task=f"bench/{TICK_PREFIX}{i}",
                            since=since,
                            until=until,
                            limit=500,
                            cursor=cursor,
                        )
                    )
                    for record in page.items:
                        if record.attempt != 1:
                            continue
                        if record.status is RunStatus.SKIPPED:
                            skipped[kind] += 1
                        elif record.started_at is not None:
                            delay = (record.started_at - record.scheduled_at).total_seconds()
                            delays[kind].append(delay)
                    cursor = page.next_cursor
                    if cursor is None:
                        break
    finally:
        store.close()
    return {
        kind: {**summary_ms(values), "skipped": skipped[kind]} for kind, values in delays.items()
    }


def measure(args: argparse.Namespace) -> Json:
    code = Path(args.code).resolve() if args.code else ROOT
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        root, state = Path(tmp, "tasks"), Path(tmp, "state")
        now = datetime.now(UTC).replace(microsecond=0)
        allowance = 8 + args.tasks * 0.0015  # start-up: about 4 s at 10 000 tasks, when idle
        first_slot = now + timedelta(seconds=allowance)
        last_slot = write_tasks(root, args.tasks, args.per_second, first_slot)
        port = free_port()
        spawned = time.time()
        app = Crontask(root, state, port, code, args.extra)
        try:
            if not app.wait_started():
                return {"tasks": args.tasks, "error": "crontask run did not start"}
            startup = time.time() - spawned
            if time.time() >= first_slot.timestamp():
                return {"tasks": args.tasks, "error": f"started too late ({startup:.1f} s)"}
            # The run phase: every task fails once and succeeds once.
            deadline = last_slot.timestamp() + 120
            while app.succeeded < args.tasks and time.time() < deadline:
                time.sleep(0.5)
            if app.succeeded < args.tasks:
                return {
                    "tasks": args.tasks,
                    "error": f"only {app.succeeded} of {args.tasks} tasks succeeded in time",
                }
            runs_s = time.time() - first_slot.timestamp()
            time.sleep(2)  # the last records
            scraper = Scraper(port)
            timings: dict[bool, list[float]] = {True: [], False: []}
            sizes: dict[bool, int] = {}
            body = b""
            rendered: dict[bool, float] = {}  # when each encoding was last asked for
            for i in range(2 * args.scrapes):
                compressed = i % 2 == 0
                # crontask sends a body rendered less than 1 s before again (a burst of
                # scrapers costs one render): each scrape here waits that out, so that each
                # is a render, as Prometheus's every 15-30 s are.
                wait = rendered.get(compressed, 0.0) + RENDER_REUSE_S - time.monotonic()
                time.sleep(max(0.0, wait))
                rendered[compressed] = time.monotonic()
                seconds, size, body = scraper.scrape(compressed)
                timings[compressed].append(seconds)
                sizes[compressed] = size
            shape = analyse(body)
            # Start delay with and without scrapes, alternating windows.
            windows: list[tuple[str, float, float]] = []
            scrapes: list[float] = []
            for w in range(args.windows):
                kind = "unscraped" if w % 2 == 0 else "scraped"
                began = float(int(time.time()) + 1)
                ended = began + args.window
                if kind == "scraped":
                    scrape_every_second(port, ended, scrapes)
                time.sleep(max(0.0, ended - time.time()))
                windows.append((kind, began, ended))
        finally:
            app.stop()
        delays = start_delays(state, windows, args.per_second) if windows else {}
        restart = after_a_restart(root, state, code, args.extra) if args.restart else {}
        return {
            "tasks": args.tasks,
            "per_second": args.per_second,
            "code": str(code),
            "extra": args.extra,
            "startup_s": startup,
            "runs_s": runs_s,
            "body_bytes": sizes[False],
            "gzip_bytes": sizes[True],
            "scrape_gzip": summary_ms(timings[True]),
            "scrape_plain": summary_ms(timings[False]),
            **shape,
            "window_s": args.window,
            "windows": args.windows,
            "scrapes_in_windows": summary_ms(scrapes),
            "delay": delays,
            "restart": restart,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help="run one measurement")
    parser.add_argument("tasks", type=int)
    parser.add_argument("--scrapes", type=int, default=50, help="scrapes per encoding")
    parser.add_argument("--window", type=float, default=30.0, help="seconds per delay window")
    parser.add_argument(
        "--windows", type=int, default=4, help="alternating windows: 0 (none) or >= 2"
    )
    parser.add_argument("--per-second", type=int, default=5, help="tasks firing every second")
    parser.add_argument(
        "--restart", action="store_true", help="then start crontask again and scrape it"
    )
    parser.add_argument("--code", help="the source tree to run crontask from (default: this one)")
    parser.add_argument(
        "--run-arg",
        action="append",
        default=[],
        dest="extra",
        metavar="ARG",
        help="one more `crontask run` argument (repeatable; --run-arg=--flag)",
    )
    args = parser.parse_args(argv)
    if args.windows == 1:
        parser.error("--windows must be 0 (no delay measurement) or at least 2")
    emit(measure(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
