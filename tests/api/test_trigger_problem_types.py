"""The 503s of ``POST /api/v1/tasks/{ns}/{name}/runs`` say by their problem type whether a run
may have been started, so that a client knows whether asking again could run the task twice:
``not-started`` - nothing was run or recorded (the replica may not start runs now) - and
``run-undecided`` - the run starts if the store takes its claim, or the scheduler did not
answer in time (that was answered "could not be completed in time ... retry later").
``crontask trigger`` asks again after the first only; the types it looks for are the ones the
API sends."""

from __future__ import annotations

import pytest

from reconciler.api import run_decision
from reconciler.api.app import create_app
from reconciler.cli import remote
from reconciler.controller.view import Triggered
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import AppFactory, TestClient
from tests.api.fakes import FakeRuntime, view
from tests.api.test_problems import assert_problem
from tests.api.test_run_now_store_unanswered import _runtime
from tests.api.test_trigger_not_started import Fenced
from tests.api.test_trigger_replicas import URL, DecidingStore


def test_a_run_not_started_is_a_not_started_problem() -> None:
    with TestClient(create_app(Fenced([view("hello")]), auth=None, metrics=Metrics())) as client:
        answer = client.post(URL)
    body = assert_problem(answer, 503, "not-started")
    assert body["type"] == remote.NOT_STARTED_TYPE
    assert answer.headers["Retry-After"] == "5"
    assert body["detail"].startswith("run of default/hello not started: ")


@pytest.mark.parametrize("policy", ["Forbid", "Replace"])
def test_a_run_the_store_may_yet_claim_is_a_run_undecided_problem(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    monkeypatch.setattr(run_decision, "DECISION_WAIT", 0.0)
    with TestClient(make_app(rt=_runtime(DecidingStore(down=True), policy))) as client:
        answer = client.post(URL)
    body = assert_problem(answer, 503, "run-undecided")
    assert body["type"] == remote.UNDECIDED_TYPE
    assert "starts only if the store takes its claim" in body["detail"]
    assert "Retry-After" not in answer.headers  # a client that honours it might run it twice


class Unanswered(FakeRuntime):
    """The scheduler's loop did not take the trigger in time (``Service._on_loop``): it was
    handed over all the same, and may yet start the run."""

    def trigger(self, key: str) -> Triggered:
        raise TimeoutError("the loop did not answer within 30s")


def test_a_trigger_the_scheduler_did_not_answer_in_time_is_run_undecided() -> None:
    app = create_app(Unanswered([view("hello")]), auth=None, metrics=Metrics())
    with TestClient(app) as client:
        answer = client.post(URL)
    body = assert_problem(answer, 503, "run-undecided")
    assert "may still start" in body["detail"], body
    assert "retry" not in body["detail"], body
    assert "Retry-After" not in answer.headers
