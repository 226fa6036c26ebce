"""``api.run_decision.decided``: a run-now of a ``job`` task under ``Replace`` still waiting for
the Job of the run it replaces is ``pending`` in a Job's words also when its task is removed
while it waits (the run goes on waiting; the desired state no longer holds the task to tell its
action). Before, the answer, worded from the desired state once the wait was over, spoke of a
command's ``--kill-grace``. Its action is the one the run was fired with
(``RuntimeView.trigger``), also when the task is gone before the answer looks (both actions
were said then)."""

from __future__ import annotations

import pytest

from reconciler.api import run_decision
from reconciler.api.run_decision import decided
from tests.api.test_run_decision_replacing import Waiting, unrecorded


class RemovedWhileWaiting(Waiting):
    """A view whose task is removed as the answer first asks whether its run still waits."""

    def replacing(self, run_id: str) -> bool:
        with self._lock:
            self.views.clear()
        return super().replacing(run_id)


@pytest.fixture(autouse=True)
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_decision, "DECISION_WAIT", 0.3)


def test_a_job_run_whose_task_is_removed_while_it_waits_is_pending_in_a_jobs_words() -> None:
    runtime = RemovedWhileWaiting(job=True)
    runtime.waiting.add((run := unrecorded()).id)

    _, why = decided(runtime, runtime.fired(run))

    assert not runtime.in_force()  # removed, and the run still waits
    assert why is not None
    assert why.startswith("not started: it waits for the Job of the run it replaces"), why
    assert "(ReplaceBlocked)" in why
    assert "--kill-grace" not in why


def test_a_command_run_whose_task_is_removed_while_it_waits_keeps_a_commands_words() -> None:
    runtime = RemovedWhileWaiting()
    runtime.waiting.add((run := unrecorded()).id)

    _, why = decided(runtime, runtime.fired(run))

    assert why is not None
    assert why.startswith("not started: it waits for the run it replaces to stop"), why
    assert "Job" not in why


def test_a_job_run_whose_task_was_gone_before_the_answer_looked_keeps_a_jobs_words() -> None:
    runtime = Waiting(job=True)
    runtime.waiting.add((run := unrecorded()).id)
    fired = runtime.fired(run)
    runtime.views.clear()  # removed between the trigger and its answer

    _, why = decided(runtime, fired)

    assert why is not None
    assert why.startswith("not started: it waits for the Job of the run it replaces"), why
    assert "--kill-grace" not in why
