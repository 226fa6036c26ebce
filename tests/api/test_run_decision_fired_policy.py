"""A run-now with replicas, the run store not answering: whether the run goes on (Allow: answered
``running``) or may be skipped (a 503) is told by the concurrencyPolicy of the definition the
run was fired by, which ``RuntimeView.trigger`` returns with its record (taken on the loop, as
it fires). Before, the answer read the desired state after the trigger had returned: a pass
queued on the loop behind the fire, changing or removing the task, had an Allow run going ahead
answered 503, which invites a second request that runs it twice. By the API and the page."""

from __future__ import annotations

import re

import pytest

from reconciler import web
from reconciler.api import run_decision
from reconciler.api.app import create_app
from reconciler.api.problems import ProblemError
from reconciler.api.run_decision import decided
from reconciler.controller.view import TaskView, Triggered
from reconciler.core.runs import RunRecord
from reconciler.sinks.metrics import Metrics
from reconciler.store import StoreUnavailable
from tests.api.conftest import TestClient
from tests.api.fakes import view
from tests.api.test_trigger_replicas import DecidingStore, ReplicaRuntime, claimed

THEN = ["removed", "now Forbid"]
HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser sends


class Unanswering(DecidingStore):
    def get(self, run_id: str, attempt: int | None = None) -> RunRecord | None:
        self.reads += 1
        raise StoreUnavailable("connection refused")


class PassAfterFire(ReplicaRuntime):
    """The next pass, queued on the loop behind the fire, lands before the answer reads
    anything: the task is then ``then`` (removed, or changed to Forbid)."""

    then: dict[str, TaskView]

    def trigger(self, key: str) -> Triggered:
        fired = super().trigger(key)
        with self._lock:
            self.views.clear()
            self.views.update(self.then)
        return fired


@pytest.fixture(autouse=True)
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_decision, "DECISION_WAIT", 0.3)


def fired_under_allow(then: str) -> PassAfterFire:
    store = Unanswering()
    runtime = PassAfterFire(store, claimed)
    runtime.views["default/hello"] = view("hello", concurrencyPolicy="Allow")
    forbid = {"default/hello": view("hello", concurrencyPolicy="Forbid")}
    runtime.then = {} if then == "removed" else forbid
    return runtime


def policy_now(runtime: PassAfterFire) -> str | None:
    definition = runtime.in_force().get("default/hello")
    return None if definition is None else definition.task.spec.concurrency_policy.value


@pytest.mark.parametrize("then", THEN)
def test_an_allow_run_fired_just_before_a_pass_is_answered_running(then: str) -> None:
    runtime = fired_under_allow(then)
    fired = runtime.trigger("default/hello")
    assert policy_now(runtime) == (None if then == "removed" else "Forbid")  # the pass landed
    try:
        found, why = decided(runtime, fired)
    except ProblemError as err:
        pytest.fail(f"Allow run (going ahead) answered {err.status}: {err.detail}")
    assert runtime.deciding.reads == 1  # the store was asked, and did not answer
    assert (found, why) == (fired.record, None)


@pytest.mark.parametrize("then", THEN)
def test_the_page_redirects_an_allow_run_fired_just_before_a_pass(then: str) -> None:
    runtime = fired_under_allow(then)
    app = web.install(create_app(runtime, auth=None, metrics=Metrics()))
    with TestClient(app) as client:
        page = client.get("/tasks/default/hello", headers=HTML).text
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert token is not None
        answer = client.post(
            "/tasks/default/hello/run",
            data={"csrf": token.group(1)},
            headers=HTML,
            follow_redirects=False,
        )
    assert answer.status_code == 303, answer.text  # not the 503 page: the run goes ahead
    # Not seen in the store: the task's page, which lists the run once it is recorded.
    assert answer.headers["location"] == "/tasks/default/hello"
    assert runtime.deciding.reads == 1
