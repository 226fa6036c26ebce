"""A run asked for now (``POST /api/v1/tasks/{ns}/{name}/runs``) of a ``Replace`` command task
is answered ``pending`` only while the dispatcher has it wait for the run it replaces to stop,
with words for a command (there is no Job), and never from the run store's silence: a run that
started while the store was locked is ``running``, not ``pending`` (it was answered
``pending`` after it had even ended, "waiting for the Job ... to be deleted"). ``crontask
trigger`` prints what a pending run waits for, exit status ``remote.PENDING``.

The real ``crontask run`` (a subprocess) on its SQLite store, which the test locks itself, and
the real ``crontask trigger``."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from reconciler.api.run_decision import DECISION_WAIT
from reconciler.cli.remote import PENDING
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.store import DB_FILENAME
from tests.e2e.conftest import Crontask, crontask
from tests.helpers import wait_for

__all__ = ["crontask"]

pytestmark = pytest.mark.e2e

TASK = "default/r"
# The command's kill grace, given after the fixture's own 1 s (the last one counts): the run
# replaced ignores SIGTERM and ends once the test opens its gate, well within it.
LONG_GRACE = ["sh", "-c", 'exec "$@" --kill-grace 60s', "sh"]


def write_task(app: Crontask, script: str) -> None:
    document = {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": "r"},
        "spec": {
            "schedule": "@yearly",
            "concurrencyPolicy": "Replace",
            "command": {"args": ["sh", "-c", script]},
        },
    }
    app.tasks.joinpath("r.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    app.wait_log("task added")


def trigger(app: Crontask) -> tuple[dict[str, Any], float]:
    """The answer to a run-now, and how long it took."""
    began = time.monotonic()
    response = httpx.post(f"{app.server}/api/v1/tasks/{TASK}/runs", timeout=15)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body, time.monotonic() - began


def stored(app: Crontask, run_id: str) -> RunRecord | None:
    return next((r for r in app.runs(TASK) if r.id == run_id), None)


def finished(app: Crontask, run_id: str) -> RunRecord | None:
    record = stored(app, run_id)
    return record if record is not None and record.status.finished else None


@contextmanager
def locked(state: Path) -> Iterator[None]:
    """The run store locked for writes by another session, as a backup or a stuck writer
    would: crontask's writes wait, its reads of the run may not come in time."""
    db = sqlite3.connect(state / DB_FILENAME, isolation_level=None, timeout=30)
    try:
        db.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        db.execute("ROLLBACK")
        db.close()


def test_a_replace_run_that_started_is_running_with_the_store_locked(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    app = crontask()
    done = tmp_path / "done"
    write_task(app, f"touch {done}")

    with locked(app.state):
        answer, took = trigger(app)
        # It ran meanwhile (nothing to replace): what the store has not written yet is no
        # sign that it waits.
        wait_for("the run to have run", done.exists)

    assert answer["status"] == "running", answer
    assert answer["startTime"] is not None
    # Alone, nothing to replace: the dispatcher decided it, no wait for the store.
    assert took < DECISION_WAIT, f"answered after {took:.1f}s"
    record = wait_for("its record", lambda: stored(app, answer["id"]))
    assert record.status in (RunStatus.RUNNING, RunStatus.SUCCEEDED)


@pytest.mark.slow  # the answer's whole wait, then the run's
def test_a_command_run_waiting_for_the_run_it_replaces_is_pending_without_a_job(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    app = crontask(wrapper=LONG_GRACE)
    started, gate = tmp_path / "started", tmp_path / "gate"
    # Deaf to SIGTERM (so is the sleep: an ignored signal stays ignored across exec) until the
    # gate opens: the run replaced stops only then, within the kill grace.
    write_task(app, f"trap '' TERM; touch {started}; while [ ! -e {gate} ]; do sleep 0.05; done")
    try:
        first, (line, code, took) = replaced_while_deaf(app, started)
    finally:
        gate.touch()  # else the stop at the test's end waits out the kill grace

    # As a user sees it: the run, pending, what it waits for, and an exit status of its own.
    assert code == PENDING, line
    head, _, why = line.partition(" pending: ")
    assert head.startswith(f"{TASK}: run default.r."), line
    assert why.startswith("not started: it waits for the run it replaces to stop"), line
    assert "Job" not in why
    assert "ReplaceBlocked" not in why
    assert took >= DECISION_WAIT, f"answered after {took:.1f}s, before its wait ran out"
    # Once the run it replaces stops (the gate is open), it starts: "pending" was so.
    second = head.removeprefix(f"{TASK}: run ")
    ended = wait_for("the second run's end", lambda: finished(app, second), timeout=30)
    assert ended.status is RunStatus.SUCCEEDED, ended
    replaced = stored(app, first["id"])
    assert replaced is not None
    assert replaced.reason == "Replaced", replaced


def replaced_while_deaf(
    app: Crontask, started: Path
) -> tuple[dict[str, Any], tuple[str, int, float]]:
    """A first run-now, its command going, then ``crontask trigger`` of a second one that
    replaces it: the first answer, and the command's line, exit status and time taken. The
    second run is not recorded before the first stopped."""
    first, _ = trigger(app)
    assert first["status"] == "running", first
    wait_for("the first run's command", started.exists)
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "trigger", TASK, "--server", app.server],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    took = time.monotonic() - began
    assert done.stderr == "", done.stderr
    line = done.stdout.removesuffix("\n")
    run_id = line.partition(" pending: ")[0].removeprefix(f"{TASK}: run ")
    assert stored(app, run_id) is None, line  # not started: nothing of it recorded yet
    return first, (line, done.returncode, took)
