"""``POST /api/v1/tasks/{ns}/{name}/runs`` with replicas, the run store not answering. The
answer does not wait for a read of a store that hangs past ``DECISION_WAIT`` (plus a small
margin; a read can otherwise last the driver's timeouts, longer than the CLI waits). Under
Forbid and Replace the run does not start unless the store takes its claim, so the answer is
a 503 saying so; under Allow it runs all the same, and is answered ``running``."""

from __future__ import annotations

import threading

import pytest

from reconciler.api import run_decision
from reconciler.core.runs import RunRecord
from tests.api.conftest import AppFactory, TestClient
from tests.api.fakes import view
from tests.api.test_problems import assert_problem
from tests.api.test_trigger_replicas import URL, DecidingStore, ReplicaRuntime, claimed

# Bound for a read that never returns in the test without the fix: then the request waits this
# long, and the test fails (the read returned before the answer came).
HUNG_FOR = 5.0


class HungStore(DecidingStore):
    """A read blocks until ``release`` is set (a server that takes the connection and never
    answers); ``returned`` counts the reads that came back."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.returned = 0

    def get(self, run_id: str, attempt: int | None = None) -> RunRecord | None:
        self.reads += 1
        self.release.wait(HUNG_FOR)
        self.returned += 1
        return None


@pytest.fixture
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_decision, "DECISION_WAIT", 0.0)
    monkeypatch.setattr(run_decision, "READ_MARGIN", 0.05)


def _runtime(store: DecidingStore, policy: str) -> ReplicaRuntime:
    runtime = ReplicaRuntime(store, claimed)
    runtime.views["default/hello"] = view("hello", concurrencyPolicy=policy)
    return runtime


@pytest.mark.usefixtures("short_wait")
def test_the_answer_does_not_wait_for_a_read_the_store_never_answers(
    make_app: AppFactory,
) -> None:
    store = HungStore()
    with TestClient(make_app(rt=_runtime(store, "Forbid"))) as client:
        response = client.post(URL)
        assert (store.reads, store.returned) == (1, 0)  # answered, the read still blocked
        store.release.set()
    body = assert_problem(response, 503)
    # No Retry-After: the run may still start, and a client that honours it might ask again.
    assert "Retry-After" not in response.headers
    assert "concurrencyPolicy Forbid" in body["detail"]
    assert "skipped (StoreUnavailable)" in body["detail"]


@pytest.mark.usefixtures("short_wait")
def test_under_allow_a_run_the_store_does_not_answer_for_is_answered_running(
    make_app: AppFactory,
) -> None:
    store = HungStore()
    with TestClient(make_app(rt=_runtime(store, "Allow"))) as client:
        response = client.post(URL)
        assert store.returned == 0
        store.release.set()
    assert (response.status_code, response.json()["status"]) == (202, "running")


@pytest.mark.parametrize(("policy", "status"), [("Forbid", 503), ("Replace", 503), ("Allow", 202)])
def test_a_store_that_cannot_be_read_is_read_once_and_answered_by_the_policy(
    make_app: AppFactory, policy: str, status: int
) -> None:
    store = DecidingStore(down=True)
    with TestClient(make_app(rt=_runtime(store, policy))) as client:
        response = client.post(URL)
    assert response.status_code == status, response.text
    assert store.reads == 1  # known unavailable: not read again
    if status == 503:
        assert f"concurrencyPolicy {policy}" in assert_problem(response, 503)["detail"]
