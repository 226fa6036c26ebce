"""``POST /api/v1/tasks/{ns}/{name}/runs`` with replicas: the dispatcher's record of a manual
run says ``running`` before the shared store has said whether it may start (a run of the task
may be going on another replica). The answer is what the store decided: a run skipped is not
answered ``running``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from reconciler.api import run_decision
from reconciler.controller.view import Members, MemberStatus, Triggered
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import MemoryRunStore, StoreUnavailable
from tests.api.conftest import AppFactory, TestClient
from tests.api.fakes import T0, FakeRuntime, view
from tests.api.test_problems import assert_problem

URL = "/api/v1/tasks/default/hello/runs"
Decision = Callable[[RunRecord], RunRecord | None]


def claimed(record: RunRecord) -> RunRecord:
    return record


def skipped(record: RunRecord) -> RunRecord:
    return dataclasses.replace(
        record,
        status=RunStatus.SKIPPED,
        started_at=None,
        finished_at=record.started_at,
        reason="ConcurrencyForbid",
        message="previous run still running (x on b:1:b); policy Forbid",
    )


class DecidingStore(MemoryRunStore):
    """Holds a run's first record only from its ``late``-th read on: the store's check is on
    its way while the answer is being made. ``down``: every read fails."""

    def __init__(self, late: int = 1, *, down: bool = False) -> None:
        super().__init__()
        self.late = late
        self.down = down
        self.reads = 0
        self.decided: RunRecord | None = None

    def get(self, run_id: str, attempt: int | None = None) -> RunRecord | None:
        self.reads += 1
        if self.down:
            raise StoreUnavailable("connection refused")
        if self.reads == self.late and self.decided is not None:
            self.claim(self.decided)
        return super().get(run_id, attempt)


class ReplicaRuntime(FakeRuntime):
    """Answers a manual run ``running`` at once, as the dispatcher does, while the store's
    check (``decision``: the record it writes, None for none) is still on its way."""

    def __init__(self, store: DecidingStore, decision: Decision, *, alone: bool = False) -> None:
        super().__init__([view("hello")])
        self._store = store
        self.deciding = store
        self.decision = decision
        if not alone:
            self.replicas = Members((_member("a:1:a", me=True), _member("b:1:b")))

    def trigger(self, key: str) -> Triggered:
        self.views[key]  # KeyError for an unknown task, as the protocol says
        self.clock += timedelta(seconds=1)
        record = _manual(key, self.clock)
        self.deciding.decided = self.decision(record)
        return self.fired(record)


def _manual(key: str, at: datetime) -> RunRecord:
    return RunRecord(
        id=run_id(key, at),
        task=key,
        scheduled_at=at,
        trigger=Trigger.MANUAL,
        status=RunStatus.RUNNING,
        started_at=at,
        owner="a:1:a",
    )


def _member(name: str, *, me: bool = False) -> MemberStatus:
    return MemberStatus(name, None, T0, T0, 1, "d", None, False, me)


def _post(make_app: AppFactory, runtime: ReplicaRuntime) -> tuple[int, dict[str, object]]:
    with TestClient(make_app(rt=runtime)) as client:
        response = client.post(URL)
        return response.status_code, response.json()


def test_a_run_the_store_skips_is_answered_skipped(make_app: AppFactory) -> None:
    store = DecidingStore(late=3)
    status, body = _post(make_app, ReplicaRuntime(store, skipped))
    assert status == 202
    assert (body["status"], body["reason"]) == ("skipped", "ConcurrencyForbid")
    assert "on b:1:b" in str(body["message"])
    assert store.reads == 3  # it waited for the check


def test_a_run_the_store_claims_is_answered_running(make_app: AppFactory) -> None:
    store = DecidingStore(late=2)
    status, body = _post(make_app, ReplicaRuntime(store, claimed))
    assert (status, body["status"]) == (202, "running")
    assert store.reads == 2


def test_alone_the_answer_does_not_wait_for_the_store(make_app: AppFactory) -> None:
    store = DecidingStore()
    status, body = _post(make_app, ReplicaRuntime(store, claimed, alone=True))
    assert (status, body["status"]) == (202, "running")
    assert store.reads == 0


def test_a_store_that_does_not_decide_in_time_leaves_the_run_running(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its claim waits for the store too, and the run goes on meanwhile. (A store that cannot
    # be read at all: test_run_now_store_unanswered.)
    monkeypatch.setattr(run_decision, "DECISION_WAIT", 0.0)
    status, body = _post(make_app, ReplicaRuntime(DecidingStore(), lambda record: None))
    assert (status, body["status"]) == (202, "running")


def test_an_unknown_task_is_still_a_404(make_app: AppFactory) -> None:
    runtime = ReplicaRuntime(DecidingStore(), claimed)
    with TestClient(make_app(rt=runtime)) as client:
        assert_problem(client.post("/api/v1/tasks/default/nope/runs"), 404)
