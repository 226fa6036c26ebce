"""The status page's Run now answers as ``POST /api/v1/tasks/{ns}/{name}/runs`` does
(``api.run_decision``). With replicas it redirects to the run once the shared store holds the
run's first record, its claim or its skip: it redirected at once, and the run's page said
"There is no run" (a 404 that never refreshes) while the run went ahead, so the person asked
again. A trigger the scheduler did not take in time is the API's run-undecided, said as a
page: it was "retry later" with Retry-After, and the run may still start (asked again, twice).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from httpx import Response

from reconciler import web
from reconciler.api import run_decision
from reconciler.api.app import create_app
from reconciler.controller.view import Triggered
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import TestClient
from tests.api.fakes import FakeRuntime, view
from tests.api.test_run_now_store_unanswered import _runtime
from tests.api.test_trigger_problem_types import Unanswered
from tests.api.test_trigger_replicas import DecidingStore, ReplicaRuntime, claimed, skipped

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser sends
TASK = "/tasks/default/hello"


def _app(runtime: FakeRuntime) -> FastAPI:
    return web.install(create_app(runtime, auth=None, metrics=Metrics()))


def _csrf(client: TestClient) -> str:
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(TASK, headers=HTML).text)
    assert token is not None
    return token.group(1)


def _run_now(client: TestClient, token: str) -> Response:
    answer: Response = client.post(
        f"{TASK}/run", data={"csrf": token}, headers=HTML, follow_redirects=False
    )
    return answer


class SkippedHere(ReplicaRuntime):
    """A run skipped by this replica's dispatcher (its own run of the task is going): the
    record says ``skipped`` at once, and the store's threads write it a moment later."""

    def trigger(self, key: str) -> Triggered:
        record = skipped(super().trigger(key).record)
        self.deciding.decided = record
        return self.fired(record)


# How the run is decided, and the status its page then shows. The record is in the store from
# the third read on, whoever decided it: the shared store (replicas), or this replica, whose
# store threads write a skip, or a run alone, a moment after the answer.
DECIDED: dict[str, tuple[Callable[[DecidingStore], ReplicaRuntime], str]] = {
    "claimed by the store": (lambda store: ReplicaRuntime(store, claimed), "running"),
    "skipped by the store": (lambda store: ReplicaRuntime(store, skipped), "skipped"),
    "skipped here": (lambda store: SkippedHere(store, claimed), "skipped"),
    "alone": (lambda store: ReplicaRuntime(store, claimed, alone=True), "running"),
}


@pytest.mark.parametrize("how", DECIDED)
def test_run_now_redirects_once_the_store_holds_the_run(how: str) -> None:
    made, shown = DECIDED[how]
    store = DecidingStore()
    with TestClient(_app(made(store))) as client:
        token = _csrf(client)
        store.late = store.reads + 3  # the store's check lands on the third read from now
        answer = _run_now(client, token)
        read_before_redirect = store.reads
        assert answer.status_code == 303
        run = client.get(answer.headers["location"], headers=HTML)
    assert "There is no run" not in run.text
    assert run.status_code == 200
    assert f'<span class="status {shown}">{shown}</span>' in run.text
    assert read_before_redirect == store.late  # the redirect waited for the store to hold it


def test_run_now_the_store_does_not_answer_for_is_the_undecided_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Under Forbid the run starts only if the store takes its claim: no "Not found" page.
    monkeypatch.setattr(run_decision, "DECISION_WAIT", 0.0)
    with TestClient(_app(_runtime(DecidingStore(down=True), "Forbid"))) as client:
        answer = _run_now(client, _csrf(client))
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("text/html")
    assert "starts only if the store takes its claim" in answer.text
    assert "Retry-After" not in answer.headers


def test_run_now_the_scheduler_did_not_answer_is_the_undecided_page() -> None:
    with TestClient(_app(Unanswered([view("hello")]))) as client:
        answer = _run_now(client, _csrf(client))
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("text/html")
    assert "<h1>Service Unavailable</h1>" in answer.text
    assert "a run of default/hello may still start; look at its runs" in answer.text
    assert "retry" not in answer.text.lower()  # asked again, the task may run twice
    assert "Retry-After" not in answer.headers
    assert '<a href="/">All tasks</a>' in answer.text


def test_run_now_not_in_the_store_after_the_wait_opens_the_tasks_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run the store does not hold within the wait (a ``Replace`` run waiting for the run it
    replaces to stop; a store slow to take its record) opens the task's page, which refreshes
    and lists it once recorded: the run's page said "There is no run" and never refreshed."""
    monkeypatch.setattr(run_decision, "DECISION_WAIT", 0.05)
    store = DecidingStore(late=10**9)  # never within the wait
    with TestClient(_app(ReplicaRuntime(store, claimed, alone=True))) as client:
        answer = _run_now(client, _csrf(client))
        assert answer.status_code == 303
        assert answer.headers["location"] == TASK
        assert client.get(TASK, headers=HTML).status_code == 200
