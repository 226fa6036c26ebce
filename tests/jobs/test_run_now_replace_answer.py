"""A run asked for now (``POST /api/v1/tasks/{ns}/{name}/runs``) of a ``Replace`` task while a
run of it goes: its answer was ``202`` ``running`` at once, while the run waited for the Job it
replaces to be deleted, and was then skipped ``ReplaceBlocked`` (the delete refused) without
ever running. Now the answer says what became of the run: skipped, with its reason and why,
when that is decided within the answer's wait (a delete refused at once), as a Forbid skip is
said; ``pending`` (not started, no start time) while the delete is still being tried.

The real ``crontask run`` (a subprocess) against the Kubernetes emulator, which runs the Jobs'
containers as local processes and refuses (``403``) or holds unanswered the DELETE of the
running Job."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from reconciler.core.runs import RunRecord, RunStatus
from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, Gate, jobs, trigger, write_task
from tests.jobs.test_replace_refused_delete import REFUSED, TASK, refuse_swap_deletes
from tests.k8s.emulator import Emulator


def running_run(instance: Crontask, emulator: Emulator, gate: Gate) -> None:
    """Task ``swap`` (Replace, no slot due) and a first run asked for now, its Job running."""
    write_task(instance.tasks, "swap", gate.wait(), concurrencyPolicy="Replace")
    url = f"{instance.server}/api/v1/tasks/{TASK}/runs"

    def ask() -> httpx.Response | None:  # 404 until the folder's first pass took the task
        answer = httpx.post(url, timeout=10)
        return answer if answer.status_code != 404 else None

    first = wait_for("the task taken", ask)
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "running", first.text
    wait_for("its Job", lambda: jobs(emulator, "default.swap"))


def record(instance: Crontask, run_id: str) -> RunRecord | None:
    return next((r for r in instance.runs(TASK) if r.id == run_id), None)


@pytest.mark.slow
def test_a_run_skipped_replace_blocked_is_answered_skipped(
    crontask: Callable[..., Crontask],
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refuse_swap_deletes(monkeypatch)
    instance = crontask()
    gate = Gate(tmp_path)
    running_run(instance, emulator, gate)
    (job,) = jobs(emulator, "default.swap")

    answer = trigger(instance, TASK)

    assert answer["status"] == "skipped", answer
    assert answer["reason"] == "ReplaceBlocked"
    assert job["metadata"]["name"] in answer["message"]
    assert "policy Replace" in answer["message"]
    # As recorded: the answer is the run's record, not a guess.
    stored = record(instance, answer["id"])
    assert stored is not None
    assert (stored.status, stored.reason) == (RunStatus.SKIPPED, "ReplaceBlocked")
    assert len(jobs(emulator, "default.swap")) == 1  # nothing ran beside the Job
    gate.open()


@pytest.mark.slow
def test_a_run_waiting_for_a_delete_is_answered_pending_not_running(
    crontask: Callable[..., Crontask], emulator: Emulator, tmp_path: Path
) -> None:
    instance = crontask()
    gate = Gate(tmp_path)
    running_run(instance, emulator, gate)
    emulator.hold("DELETE", REFUSED.pattern)

    answer = trigger(instance, TASK)

    assert answer["status"] == "pending", answer
    assert answer["startTime"] is None
    assert "ReplaceBlocked" in answer["message"]
    assert record(instance, answer["id"]) is None  # not started: nothing recorded yet
    # Once the delete goes through, it starts: "pending" was so.
    emulator.release()
    gate.open()

    def started() -> RunRecord | None:
        found = record(instance, answer["id"])
        return found if found is not None and found.job is not None else None

    run = wait_for("the run started", started, timeout=60)
    assert run.status in (RunStatus.RUNNING, RunStatus.SUCCEEDED)
