"""``api.run_decision.decided``: a run is ``pending`` because the dispatcher says it has not
begun (``Triggered.start``) and, in words for its action, with replicas too, waits for the run
it replaces (``RuntimeView.replacing``, the dispatcher's set); never because the store has no
record of it. The real dispatcher and processes are in
tests/e2e/test_run_now_replace_pending_command.py and tests/ha/test_run_now_replace_pending_ha.py;
here each branch, with the wait shortened."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta
from typing import Any

import pytest

from reconciler.api import run_decision
from reconciler.api.run_decision import decided
from reconciler.controller.active import Start
from reconciler.controller.view import Members, Triggered
from reconciler.core.runs import RunRecord, RunStatus, Trigger
from tests.api.fakes import FakeRuntime, record, view

JOB = {"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "busybox"}]}}}}


class Waiting(FakeRuntime):
    """A view whose dispatcher has ``waiting`` wait for the runs they replace (until the test
    lets one go: ``done``)."""

    def __init__(self, *, job: bool = False) -> None:
        action: dict[str, Any] = {"command": None, "job": JOB} if job else {}
        super().__init__([view("r", concurrencyPolicy="Replace", **action)])
        self.waiting: set[str] = set()
        self.asked = threading.Event()
        self.start = Start()  # of the run fired: not begun until the test says

    def fired(self, record: RunRecord) -> Triggered:
        return dataclasses.replace(super().fired(record), start=self.start)

    def replacing(self, run_id: str) -> bool:
        self.asked.set()
        return run_id in self.waiting


def unrecorded() -> RunRecord:
    """A run decided here, nothing of it in the store (not written yet, or a locked store)."""
    return record("default/r", status=RunStatus.RUNNING, trigger=Trigger.MANUAL)


@pytest.fixture
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer's wait, for a test that waits it out (the others end as soon as decided)."""
    monkeypatch.setattr(run_decision, "DECISION_WAIT", 0.3)


@pytest.mark.usefixtures("short_wait")
def test_a_run_still_waiting_for_a_command_it_replaces_is_pending_in_its_words() -> None:
    runtime = Waiting()
    runtime.waiting.add((run := unrecorded()).id)

    found, why = decided(runtime, runtime.fired(run))

    assert found == run
    assert why is not None
    assert why.startswith("not started: it waits for the run it replaces to stop")
    assert "Job" not in why
    assert "claim" not in why  # alone: nothing of it is recorded


@pytest.mark.usefixtures("short_wait")
def test_a_job_run_still_waiting_says_job_and_with_replicas_its_claim() -> None:
    runtime = Waiting(job=True)
    runtime.replicas = Members(())
    runtime.waiting.add((run := unrecorded()).id)

    _, why = decided(runtime, runtime.fired(run))

    assert why is not None
    assert "waits for the Job of the run it replaces to be deleted" in why
    assert "(ReplaceBlocked)" in why
    assert "its claim is recorded running meanwhile" in why


def test_a_run_the_store_does_not_hold_is_running_once_the_dispatcher_says_it_began() -> None:
    runtime = Waiting()
    run = unrecorded()
    began = dataclasses.replace(run, started_at=run.scheduled_at + timedelta(seconds=3))
    runtime.start.begin(began)

    found, why = decided(runtime, runtime.fired(run))

    assert (found, why) == (began, None)  # with its start, not its decision's


def skipped(run: RunRecord, reason: str, message: str) -> RunRecord:
    """``run`` as the dispatcher writes it when its wait ends in a skip."""
    return RunRecord(
        id=run.id,
        task=run.task,
        scheduled_at=run.scheduled_at,
        trigger=run.trigger,
        status=RunStatus.SKIPPED,
        finished_at=run.scheduled_at,
        reason=reason,
        message=message,
    )


def answer_when_the_wait_ends_in(runtime: Waiting, run: RunRecord, end: RunRecord) -> RunRecord:
    """``decided``'s answer for ``run``, waiting, whose wait the dispatcher (a thread here) ends
    once the answer has asked, with ``end``, the skip it holds (``Start.end``), written just
    after: the answer is that skip, not read from the store."""
    runtime.waiting.add(run.id)

    def dispatcher() -> None:
        runtime.waiting.discard(run.id)
        runtime.start.end(end)  # its record is written after, from the store's threads
        runtime.store.claim(end)

    helper = threading.Thread(target=dispatcher)
    helper.start()
    found, why = decided(runtime, runtime.fired(run))
    helper.join(5)
    assert why is None
    return found


def test_a_job_run_whose_wait_ends_within_the_answer_is_answered_as_recorded() -> None:
    runtime = Waiting(job=True)
    run = unrecorded()
    end = skipped(run, "ReplaceBlocked", "the Job of the run it replaces still runs")

    found = answer_when_the_wait_ends_in(runtime, run, end)

    assert (found.status, found.reason) == (RunStatus.SKIPPED, "ReplaceBlocked")


def test_a_command_run_replaced_in_its_turn_while_it_waited_is_answered_skipped() -> None:
    """A run-now B waits for the run it replaces; a later run-now C replaces B too. B's wait
    ends with B skipped, ``Replaced``: its answer is that record, not the trigger's
    ``running`` (an own-commit review saw B answered 202 running, ``crontask trigger`` 0)."""
    runtime = Waiting()
    run = unrecorded()
    end = skipped(run, "Replaced", "a newer run of the task replaced the run while this run waited")

    found = answer_when_the_wait_ends_in(runtime, run, end)

    assert (found.status, found.reason) == (RunStatus.SKIPPED, "Replaced")
