"""``api.run_decision.decided`` with replicas, the run store not answering: the answer tells
by the task's concurrencyPolicy whether the run goes on (Allow) or waits for its claim (a 503).
The policy is the one the run was asked with, also when the task is removed while the store is
read (the run goes on all the same). Before, it was read from the desired state after that read,
and a removed task's said ``concurrencyPolicy unknown``: under Allow, a run going on was answered
as one that may be skipped."""

from __future__ import annotations

import pytest

from reconciler.api import run_decision
from reconciler.api.problems import ProblemError
from reconciler.api.run_decision import UNDECIDED_KIND, decided
from reconciler.controller.view import Triggered
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.store import StoreUnavailable
from tests.api.fakes import view
from tests.api.test_trigger_replicas import DecidingStore, ReplicaRuntime, claimed


class RemovedWhileRead(DecidingStore):
    """A store that does not answer, the task removed while it is read."""

    runtime: ReplicaRuntime

    def get(self, run_id: str, attempt: int | None = None) -> RunRecord | None:
        self.reads += 1
        self.runtime.views.clear()
        raise StoreUnavailable("connection refused")


@pytest.fixture(autouse=True)
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_decision, "DECISION_WAIT", 0.3)


def asked(policy: str) -> tuple[ReplicaRuntime, Triggered]:
    store = RemovedWhileRead()
    runtime = store.runtime = ReplicaRuntime(store, claimed)
    runtime.views["default/hello"] = view("hello", concurrencyPolicy=policy)
    return runtime, runtime.trigger("default/hello")


def test_under_allow_a_run_whose_task_is_removed_meanwhile_is_answered_running() -> None:
    runtime, run = asked("Allow")

    found, why = decided(runtime, run)

    assert (runtime.deciding.reads, runtime.in_force()) == (1, {})  # removed as it was read
    assert (found, why) == (run.record, None)
    assert found.status is RunStatus.RUNNING


@pytest.mark.parametrize("policy", ["Forbid", "Replace"])
def test_a_run_whose_task_is_removed_meanwhile_says_its_policy(policy: str) -> None:
    runtime, run = asked(policy)

    with pytest.raises(ProblemError) as said:
        decided(runtime, run)

    assert runtime.in_force() == {}
    assert (said.value.status, said.value.kind) == (503, UNDECIDED_KIND)
    assert f"(concurrencyPolicy {policy})" in said.value.detail
    assert "unknown" not in said.value.detail
