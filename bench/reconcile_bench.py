"""Reconcile: cold start of many tasks, and how fast one edited file is in effect.

    python bench/reconcile_bench.py --worker cold TASKS [--running]
    python bench/reconcile_bench.py --worker edit TASKS EDITS [--broken FILES]
    python bench/reconcile_bench.py --worker git TASKS

``cold``: TASKS tasks in TASKS/10 multi-document files (10 CronTasks per file, yearly slots in
five zones, a command action with env, retry and timeout) are written to a temporary folder;
then, in this fresh process, with the garbage collector set as ``crontask run`` sets it while it
starts (``reconciler/cli/collector.py``), and timed from before the source exists: the files
read ahead on every core (``sources.ahead``, as ``crontask run`` does), the ``DirectorySource``
refresh (YAML parse + validation) and ``assemble`` (``Reconciler.refresh``),
plan and ``ApsScheduler.apply`` of every task with a "task added" log line each
(``Reconciler.apply``), and ``ApsScheduler.start()`` plus one turn of the loop, after which
every job has its next fire time. That is ``crontask run``'s first pass, in its order (apply,
then start). ``--running`` starts the scheduler first, so every ``add_job`` meets a running
scheduler (a resync or a large change while running). Then a resync pass that finds nothing
changed (``refresh(None)``: every file's signature checked, the desired state assembled and
planned; ``resync_s``), and with ``--validate`` the time ``crontask validate DIR`` (a fresh
process) takes on the same folder. The same process reports the resident memory the tasks cost:
RSS after (after ``gc.collect()``) minus RSS before, over TASKS, and the seconds the cold start
spent in garbage collections (``gc_s``); ``--default-collector`` runs it under Python's default
thresholds instead, for comparison.

``edit``: the real ``crontask run`` (``python -m reconciler run DIR``, SQLite state in the temp
folder, log lines on stderr) on TASKS tasks; after its "crontask started" line, EDITS times one
file is rewritten with one task's schedule changed (a different file each time), and the
latency is the ``time=`` of the ``task updated`` line for that task minus the instant just
before the write: watchfiles' event and debounce, the pass (re-read of that file, assemble,
plan, apply) and the log line, end to end. Edits are 0.2 s apart. ``--broken FILES`` adds
FILES files of 20 documents that do not validate (a commit gone wrong: 20 definition errors a
file, in effect all along), so that the cost of an edit beside them shows.

``git``: the same TASKS tasks committed to a bare repository (``file://``), and the real
``crontask run --git URL --git-path tasks``: its first start (the clone, until every task is
added), then a restart on the checkout the first one left, which is in force before the first
fetch: the seconds to its "crontask started" line, the tasks that line counts, and the files
read ahead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import queue
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ROOT,
    Json,
    emit,
    quiet_schedule,
    rss_bytes,
    start_crontask,
    stop_crontask,
    summary_ms,
    write_tree,
)

PER_FILE = 10
START_TIMEOUT = 180.0
EDIT_TIMEOUT = 10.0


# -- cold start --------------------------------------------------------------------------------


async def _cold(
    tasks: int, running_first: bool, validate: bool = False, default_collector: bool = False
) -> Json:
    from reconciler import logs
    from reconciler.cli.collector import start_up_collector
    from reconciler.controller.dispatch import Dispatcher
    from reconciler.controller.reconcile import Reconciler
    from reconciler.host import usable_cores
    from reconciler.runner.base import Actions
    from reconciler.scheduling.apscheduler import ApsScheduler
    from reconciler.sources.ahead import read_ahead
    from reconciler.sources.files import DirectorySource
    from reconciler.store.memory import MemoryRunStore

    logs.configure("info", "logfmt")  # as `crontask run`; the parent discards stderr
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        root = Path(tmp, "tasks")
        write_tree(root, tasks // PER_FILE, PER_FILE)
        for _ in range(3):
            gc.collect()
        rss_before = rss_bytes()

        def on_fire(key: str, at: datetime) -> None:
            pass

        # The collector as `crontask run` sets it while it starts (reconciler/cli/collector.py),
        # or, with --default-collector, Python's defaults (what start-up paid before).
        collecting = _CollectionTime()
        gc.callbacks.append(collecting.callback)
        policy = _default_collector() if default_collector else start_up_collector()
        with policy as started_up:
            started = time.perf_counter()
            scheduler = ApsScheduler(on_fire)
            if running_first:
                scheduler.start()
            source = DirectorySource([root], max_tasks=_bound(tasks))
            read_ahead(source, usable_cores())  # as `crontask run` does, before its first pass
            idle = Dispatcher(MemoryRunStore(), owner="bench:1:x", actions=Actions([]))
            reconciler = Reconciler([source], scheduler, idle)
            keys = reconciler.refresh(None)
            read = time.perf_counter()
            result = reconciler.apply(keys, None, started)
            applied = time.perf_counter()
            if not running_first:
                scheduler.start()
            await asyncio.sleep(0)  # the scheduler's wake-up: it computes its next wait
            done = time.perf_counter()
            started_up()
        gc.callbacks.remove(collecting.callback)
        scheduled = sum(scheduler.next_fire_time(k) is not None for k in scheduler.owned())
        for _ in range(3):
            gc.collect()
        rss_after = rss_bytes()
        # A resync that finds nothing changed: every file's signature checked, the desired
        # state assembled and planned against the scheduler (what the periodic resync does).
        resync_started = time.perf_counter()
        resync = reconciler.apply(reconciler.refresh(None), None, resync_started)
        resync_s = time.perf_counter() - resync_started
        scheduler.shutdown()
        validate_s = _validate(root, tasks) if validate else float("nan")
        return {
            "tasks": tasks,
            "files": tasks // PER_FILE,
            "running_first": running_first,
            "added": len(result.plan.steps),
            "scheduled": scheduled,
            "errors": len(result.desired.problems),
            "total_s": done - started,
            "read_s": read - started,
            "apply_s": applied - read,
            "start_s": done - applied,
            "rss_before": rss_before,
            "rss_after": rss_after,
            "rss_per_task": (rss_after - rss_before) / tasks,
            "gc_s": collecting.seconds,
            "resync_s": resync_s,
            "resync_changes": len(resync.plan.steps),
            "validate_s": validate_s,
        }


class _CollectionTime:
    """Seconds spent in the garbage collector's collections, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._began = 0.0

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._began


@contextlib.contextmanager
def _default_collector() -> Iterator[Callable[[], None]]:
    """Python's default collector thresholds, frozen once started (crontask before
    reconciler/cli/collector.py)."""
    yield gc.freeze


def _bound(tasks: int) -> int:
    """The --max-tasks a user who declares ``tasks`` tasks in one source gives."""
    from reconciler.sources.limits import DEFAULT_MAX_TASKS

    return max(tasks, DEFAULT_MAX_TASKS)


def _validate(root: Path, tasks: int) -> float:
    """``crontask validate`` of the folder, as a user runs it (a fresh process): seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "validate",
            "--max-tasks",
            str(_bound(tasks)),
            str(root),
        ],
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    elapsed = time.perf_counter() - started
    return elapsed if done.returncode == 0 else float("nan")


# -- one edit, end to end ----------------------------------------------------------------------

_TIME = re.compile(r"^time=(\S+)")
_TASK = re.compile(r"\btask=(\S+)")
_SCHEDULE = re.compile(r'schedule: "([^"]*)"')


def _reader(stream: object, lines: queue.Queue[tuple[float, str]]) -> None:
    assert hasattr(stream, "readline")
    for line in iter(stream.readline, ""):
        lines.put((time.time(), line))
    lines.put((time.time(), ""))


def _log_time(line: str) -> float | None:
    found = _TIME.match(line)
    return datetime.fromisoformat(found.group(1)).timestamp() if found else None


def _wait_for(
    lines: queue.Queue[tuple[float, str]], needle: str, task: str | None, timeout: float
) -> tuple[float, str] | None:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            seen, line = lines.get(timeout=left)
        except queue.Empty:
            return None
        if not line:
            return None  # the process ended
        if needle in line and (task is None or f"task={task} " in line + " "):
            return seen, line
    return None


def _spawn(
    args: list[str],
) -> tuple[subprocess.Popen[str], queue.Queue[tuple[float, str]], float]:
    """The real ``crontask run ARGS``, its log lines (each with when it was read) and when it
    was spawned."""
    lines: queue.Queue[tuple[float, str]] = queue.Queue()
    spawned = time.time()
    process = start_crontask([*args, "--shutdown-grace", "5s"])
    threading.Thread(target=_reader, args=(process.stderr, lines), daemon=True).start()
    return process, lines, spawned


_GIT_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def _git(tasks: int) -> Json:
    """``crontask run --git`` on TASKS tasks in one commit: the first start (the clone, until
    every task is added), then a restart on the checkout it left, to "crontask started"."""
    with tempfile.TemporaryDirectory(prefix="bench-git-") as tmp:
        work, bare = Path(tmp, "work"), Path(tmp, "tasks.git")
        write_tree(work / "tasks", tasks // PER_FILE, PER_FILE)
        env = {**os.environ, **_GIT_ENV}
        for command in (
            ["git", "init", "-q", "-b", "main", "--bare", str(bare)],
            ["git", "-C", str(work), "init", "-q", "-b", "main"],
            ["git", "-C", str(work), "add", "-A"],
            ["git", "-C", str(work), "commit", "-q", "-m", "tasks"],
            ["git", "-C", str(work), "push", "-q", str(bare), "main"],
        ):
            subprocess.run(command, env=env, check=True, capture_output=True, timeout=300)
        args = ["--git", bare.as_uri(), "--git-path", "tasks", "--state-dir", str(Path(tmp, "s"))]
        args += ["--max-tasks", str(_bound(tasks))]
        process, lines, spawned = _spawn(args)
        try:
            added = 0
            while added < tasks:
                seen = _wait_for(lines, 'msg="task added"', None, START_TIMEOUT)
                if seen is None:
                    return {"tasks": tasks, "error": f"only {added} tasks added"}
                added += 1
            first_s = time.time() - spawned
        finally:
            stop_crontask(process, 60)
        process, lines, spawned = _spawn(args)
        read_ahead = 0
        try:
            while True:
                seen = _wait_for(lines, "", None, START_TIMEOUT)
                if seen is None:
                    return {"tasks": tasks, "error": "the restart did not start"}
                if 'msg="files read ahead"' in seen[1]:
                    read_ahead = int(_field(seen[1], "files"))
                if 'msg="crontask started"' in seen[1]:
                    break
        finally:
            stop_crontask(process, 60)
        return {
            "tasks": tasks,
            "first_start_s": first_s,
            "restart_s": (_log_time(seen[1]) or seen[0]) - spawned,
            "restart_tasks": int(_field(seen[1], "tasks")),
            "read_ahead_files": read_ahead,
        }


def _field(line: str, name: str) -> str:
    found = re.search(rf" {name}=(\S+)", line)
    return found.group(1) if found else "0"


def _write_broken(root: Path, files: int) -> None:
    broken = root / "broken"
    broken.mkdir()
    for f in range(files):
        documents = [
            "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
            f"metadata: {{name: broken-{f}-{d}}}\n"
            f'spec: {{schedule: "not a schedule {d}", command: {{args: ["true"]}}}}\n'
            for d in range(20)
        ]
        (broken / f"broken-{f}.yaml").write_text("---\n".join(documents))


def _edit(tasks: int, edits: int, broken: int = 0) -> Json:
    with tempfile.TemporaryDirectory(prefix="bench-edit-") as tmp:
        root = Path(tmp, "tasks")
        files = write_tree(root, tasks // PER_FILE, PER_FILE)
        _write_broken(root, broken)
        state = str(Path(tmp, "state"))
        process, lines, spawned = _spawn(
            [str(root), "--state-dir", state, "--max-tasks", str(_bound(tasks))]
        )
        latencies: list[float] = []
        read_latencies: list[float] = []
        missed = 0
        try:
            ready = _wait_for(lines, 'msg="crontask started"', None, START_TIMEOUT)
            if ready is None:
                return {"tasks": tasks, "error": "crontask run did not start"}
            started_s = (_log_time(ready[1]) or ready[0]) - spawned
            time.sleep(0.5)  # let the watcher settle
            rnd = random.Random(11)
            step = max(1, len(files) // max(edits, 1))
            for i in range(edits):
                path = files[(i * step) % len(files)]
                text = path.read_text()
                found = _SCHEDULE.search(text)
                assert found is not None
                new = found.group(1)
                while new == found.group(1):
                    new = quiet_schedule(rnd)
                name = re.search(r"name: (\S+)", text)
                assert name is not None
                task = f"bench/{name.group(1)}"
                edited = text[: found.start(1)] + new + text[found.end(1) :]
                while not lines.empty():  # drop older lines
                    lines.get_nowait()
                before = time.time()
                path.write_text(edited)
                seen = _wait_for(lines, 'msg="task updated"', task, EDIT_TIMEOUT)
                if seen is None:
                    missed += 1
                    continue
                logged = _log_time(seen[1])
                latencies.append((logged if logged is not None else seen[0]) - before)
                read_latencies.append(seen[0] - before)
                time.sleep(0.2)
        finally:
            stop_crontask(process, 60)
        return {
            "tasks": tasks,
            "edits": edits,
            "definition_errors": 20 * broken,
            "startup_s": started_s,
            "latency": summary_ms(latencies),
            "latency_seen_by_reader": summary_ms(read_latencies),
            "missed": missed,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help="run one measurement")
    commands = parser.add_subparsers(dest="what", required=True)
    cold = commands.add_parser("cold")
    cold.add_argument("tasks", type=int)
    cold.add_argument("--running", action="store_true")
    cold.add_argument("--validate", action="store_true", help="also time `crontask validate`")
    cold.add_argument(
        "--default-collector",
        action="store_true",
        help="Python's default collector thresholds instead of crontask run's start-up policy",
    )
    edit = commands.add_parser("edit")
    edit.add_argument("tasks", type=int)
    edit.add_argument("edits", type=int)
    edit.add_argument("--broken", type=int, default=0, help="files of 20 definition errors")
    git = commands.add_parser("git")
    git.add_argument("tasks", type=int)
    args = parser.parse_args(argv)
    if args.what == "cold":
        emit(asyncio.run(_cold(args.tasks, args.running, args.validate, args.default_collector)))
    elif args.what == "git":
        emit(_git(args.tasks))
    else:
        emit(_edit(args.tasks, args.edits, args.broken))
    return 0


if __name__ == "__main__":
    sys.exit(main())
