"""Chaos on one ``crontask run`` (SQLite): tasks every second or two under ``Forbid``, ``Replace``
and ``Allow``, failing ones with retries, one that ignores SIGTERM past its timeout, manual
runs through the API and a definition broken and fixed, while crontask is killed
(``kill -9``), stopped (SIGTERM, or SIGTERM and then ``kill -9`` during the stop) or paused
(SIGSTOP, then SIGCONT) at seeded moments and started again at once. Then, from the file each
command appends to and the run store: every command started has a record, ended (none left
``running`` nor ``skipped``); no attempt started twice; no attempt after a success; attempts
numbered 1, 2, ... within the retry limit; no two runs of a ``Forbid`` task overlap; and every
task, the broken one included, still runs after the last start.

Slow (about a minute): ``make test-slow`` runs it, and CI runs that too.
"""

from __future__ import annotations

import itertools
import json
import random
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from reconciler.core.runs import RunRecord, RunStatus
from tests.e2e.conftest import Crontask
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SEED = 45
ROUNDS = 8
# Each command appends "S|E name run-id attempt time" as it starts and as it ends.
SCRIPT = (
    'echo "S $CRONTASK_NAME $CRONTASK_RUN_ID $CRONTASK_ATTEMPT $(date +%s.%N)" >> {log}; '
    "sleep {sleep}; "
    'echo "E $CRONTASK_NAME $CRONTASK_RUN_ID $CRONTASK_ATTEMPT $(date +%s.%N)" >> {log}; '
    "exit {code}"
)
# (name, schedule, policy, sleep, exit code, retry limit)
TASKS = (
    ("forbid", "* * * * * *", "Forbid", "1.5", "0", 0),
    ("slow", "*/2 * * * * *", "Forbid", "3", "0", 0),
    ("flaky", "*/2 * * * * *", "Forbid", "0.3", "1", 2),
    ("replace", "*/2 * * * * *", "Replace", "2.5", "0", 0),
    ("allow", "* * * * * *", "Allow", "2", "0", 0),
    ("edited", "*/2 * * * * *", "Forbid", "0.5", "0", 0),
    ("stubborn", "*/2 * * * * *", "Forbid", "3", "0", 1),
)
# Ignores SIGTERM past its 1 s timeout: killed after --kill-grace, and tried again.
STUBBORN = "  timeoutSeconds: 1\n  command: {args: [sh, -c, \"trap '' TERM; "
LIMITS = {name: retry + 1 for name, _, _, _, _, retry in TASKS}


def definition(
    log: Path, name: str, schedule: str, policy: str, sleep: str, code: str, retry: int
) -> str:
    script = SCRIPT.format(log=log, sleep=sleep, code=code)
    return (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
        f"metadata: {{name: {name}}}\nspec:\n  schedule: '{schedule}'\n"
        f"  concurrencyPolicy: {policy}\n"
        f"  retry: {{limit: {retry}, backoffSeconds: 1}}\n"
        "  successfulRunsHistoryLimit: 1000\n  failedRunsHistoryLimit: 1000\n"
        f"  command: {{args: [sh, -c, {json.dumps(script)}]}}\n"
    )


def lines(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    # A line cut short by a kill of the command mid-write has fewer fields: not a start.
    return [p for p in (line.split() for line in log.read_text().splitlines()) if len(p) == 5]


@pytest.mark.e2e
def test_kills_stops_and_pauses_lose_no_record_and_run_no_attempt_twice(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    rng = random.Random(SEED)  # noqa: S311 - a reproducible sequence of blows
    log = tmp_path / "commands.log"
    (tmp_path / "tasks").mkdir()
    texts = {t[0]: definition(log, *t) for t in TASKS}
    texts["stubborn"] = texts["stubborn"].replace('  command: {args: [sh, -c, "', STUBBORN)
    for name, text in texts.items():
        (tmp_path / "tasks" / f"{name}.yaml").write_text(text)
    edited = tmp_path / "tasks" / "edited.yaml"
    app = crontask()
    assert app.proc is not None
    for _ in range(ROUNDS):
        # Something happens between two blows: a few commands start.
        target = len(lines(log)) + rng.randint(2, 8)
        wait_for("commands to start", lambda: len(lines(log)) >= target, 30)  # noqa: B023
        if rng.random() < 0.5:
            name = rng.choice(sorted(texts))
            answer = httpx.post(f"{app.server}/api/v1/tasks/default/{name}/runs", timeout=10)
            assert answer.status_code in (202, 409), answer.text
        # The definition is broken at one round and fixed at another: it keeps running.
        broken = rng.random() < 0.5
        edited.write_text(
            texts["edited"].replace("spec:", "spec: [", 1) if broken else texts["edited"]
        )
        blow = rng.choice(("kill", "kill", "term", "stop", "term-kill"))
        proc = app.proc
        assert proc is not None
        if blow == "stop":
            proc.send_signal(signal.SIGSTOP)
            time.sleep(rng.uniform(0.5, 12))  # a pause, not a wait for an outcome
            proc.send_signal(signal.SIGCONT)
            continue
        if blow == "term-kill":
            # Killed during its stop: runs being stopped and recorded when the kill comes.
            proc.send_signal(signal.SIGTERM)
            time.sleep(rng.uniform(0, 2))
        proc.send_signal(signal.SIGKILL if blow != "term" else signal.SIGTERM)
        proc.wait(timeout=60)
        app.start()
    # The definition broken at the last blow is still declared: it runs at the last start.
    edited.write_text(texts["edited"].replace("spec:", "spec: [", 1))
    # The last start stops what a kill left running and marks its runs; every task runs again.
    app.stop()
    app.start()
    started_at = time.time()

    def every_task_ran_again() -> bool:
        ran = {p[1] for p in lines(log) if p[0] == "S" and float(p[4]) > started_at}
        return ran >= set(texts)

    wait_for("every task to start a command after the last start", every_task_ran_again, 60)
    assert app.stop() == 0
    records = app.runs()
    assert len(records) < 1000  # one page holds them all
    check(lines(log), records)


def check(commands: list[list[str]], records: list[RunRecord]) -> None:
    by_attempt = {(r.id, r.attempt): r for r in records}
    started: dict[tuple[str, int], list[float]] = defaultdict(list)
    ended: dict[tuple[str, int], float] = {}
    for kind, _, run, attempt, at in commands:
        if kind == "S":
            started[(run, int(attempt))].append(float(at))
        else:
            ended[(run, int(attempt))] = float(at)
    twice = {key: times for key, times in started.items() if len(times) > 1}
    assert not twice, f"attempts started twice: {twice}"
    unrecorded = sorted(key for key in started if key not in by_attempt)
    assert not unrecorded, f"commands with no run record: {unrecorded}"
    wrong = {
        key: by_attempt[key].status
        for key in started
        if by_attempt[key].status in (RunStatus.RUNNING, RunStatus.SKIPPED)
    }
    assert not wrong, f"commands recorded as never started or never ended: {wrong}"
    assert not [r for r in records if r.status is RunStatus.RUNNING]
    runs: dict[str, list[RunRecord]] = defaultdict(list)
    for record in records:
        runs[record.id].append(record)
    for run, attempts in runs.items():
        attempts.sort(key=lambda r: r.attempt)
        numbers = [r.attempt for r in attempts]
        name = attempts[0].task.split("/")[1]
        assert numbers == list(range(1, len(numbers) + 1)), (run, numbers)
        assert len(numbers) <= LIMITS[name], (run, numbers)
        assert all(r.status is not RunStatus.SUCCEEDED for r in attempts[:-1]), (run, attempts)
    # Forbid: a command starts after the previous one of its task ended (by its own line, or
    # else by its record's end: a command stopped by a restart writes no end).
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for key, times in started.items():
        record = by_attempt[key]
        end = ended.get(key)
        if end is None and record.finished_at is not None:
            end = record.finished_at.timestamp()
        spans[record.task].append((times[0], end if end is not None else float("inf")))
    for name in (t[0] for t in TASKS if t[2] == "Forbid"):
        task = f"default/{name}"
        ordered = sorted(spans[task])
        overlaps = [(a, b) for a, b in itertools.pairwise(ordered) if b[0] < a[1]]
        assert not overlaps, f"{name} ran beside itself under Forbid: {overlaps}"
