"""Plans wait for their turn at the API's door, holding none of its places: a viewer's many
plans cannot keep an operator's requests out. Real uvicorn over real sockets, real auth; the
one plan being made is held in ``planning.plan_text`` until the test lets it go.

Before, a plan waited for its turn in a worker thread, inside, holding one of the 16 places:
a viewer's 24 plans in a loop made a task's GET take 4-5 s, 150 made a run-now take 33 s.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from reconciler.api import admission, planning
from reconciler.api.admission import MAX_ACTIVE, MAX_PLANS_WAITING
from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig, Role
from reconciler.api.problems import PROBLEM_MEDIA_TYPE
from reconciler.cli import connections
from reconciler.cli.client_env import TIMEOUT_SECONDS
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import STATIC_TOKENS, bearer, write_auth
from tests.api.fakes import FakeRuntime, view
from tests.helpers import task_doc, wait_for

VIEWER = {**bearer(STATIC_TOKENS[Role.VIEWER]), "Content-Type": "application/yaml"}
OPERATOR = bearer(STATIC_TOKENS[Role.OPERATOR])
DOCUMENTS = json.dumps(task_doc("a", schedule="0 3 * * *")).encode()  # JSON is YAML
LONG = 600.0  # a wait no step of a test outlasts: what is waiting is still waiting after it


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]


class HeldPlanning:
    """``planning.plan_text`` that tells when a plan is being made and makes it only once
    ``release`` is set (a large text's second of CPU, made as long as the test needs)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self._real = planning.plan_text

    def __call__(self, *args: Any, **kwargs: Any) -> planning.TextPlan:
        self.started.set()
        assert self.release.wait(LONG)
        return self._real(*args, **kwargs)


class Served:
    def __init__(self, server: uvicorn.Server) -> None:
        self.server = server
        self.port: int = server.servers[0].sockets[0].getsockname()[1]

    def ask(self, method: str, path: str, headers: Mapping[str, str], body: bytes = b"") -> Answer:
        # The CLI's own bound: past it, `crontask trigger` fails.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_SECONDS)
        try:
            conn.request(method, path, body=body or None, headers=dict(headers))
            response = conn.getresponse()
            response.read()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()})
        finally:
            conn.close()

    def plan(self) -> Answer:
        return self.ask("POST", "/api/v1/plan", VIEWER, DOCUMENTS)

    def in_flight(self) -> int:
        """Requests whose head the server has read and whose answer is not finished."""
        return len(self.server.server_state.tasks)


@contextlib.contextmanager
def serve(tmp_path: Path) -> Iterator[Served]:
    auth = AuthConfig.load(write_auth(tmp_path))
    app = create_app(FakeRuntime([view("a")]), auth=auth, metrics=Metrics())
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        http=connections.guarded(256, per_peer=256),
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for("uvicorn to start", lambda: server.started or None)
    try:
        yield Served(server)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextlib.contextmanager
def sending(tmp_path: Path, held: HeldPlanning, n: int) -> Iterator[tuple[Served, Executor]]:
    """The server, and ``n`` threads to send plans from; on the way out the plan being made is
    let go first, so that those sent finish before the threads and then the server are waited
    for, also when the test failed half way."""
    with serve(tmp_path) as served, ThreadPoolExecutor(n) as pool:
        try:
            yield served, pool
        finally:
            held.release.set()


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldPlanning]:
    holder = HeldPlanning()
    monkeypatch.setattr(planning, "plan_text", holder)
    yield holder
    holder.release.set()  # whatever the test left waiting may finish


def test_waiting_plans_hold_no_place_and_excess_plans_are_refused_at_once(
    tmp_path: Path, held: HeldPlanning, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The plans wait as long as the test takes, wherever they wait (routes_plan: before).
    monkeypatch.setattr(admission, "PLAN_WAIT_SECONDS", LONG)
    sent = 1 + MAX_PLANS_WAITING  # the one being made, and as many as may wait for their turn
    assert sent > MAX_ACTIVE  # enough to hold every place, when each waited inside
    with sending(tmp_path, held, sent) as (served, pool):
        plans: list[Future[Answer]] = [pool.submit(served.plan)]
        assert held.started.wait(30)  # the first plan is being made
        plans += [pool.submit(served.plan) for _ in range(sent - 1)]
        wait_for("every plan to reach the server", lambda: served.in_flight() == sent)

        task = served.ask("GET", "/api/v1/tasks/default/a", OPERATOR)
        run = served.ask("POST", "/api/v1/tasks/default/a/runs", OPERATOR)
        excess = served.plan()  # one more than may wait: refused, not queued

        assert task.status == 200
        assert run.status == 202
        assert not any(p.done() for p in plans)  # answered while every plan still waits
        assert excess.status == 503
        assert excess.headers["retry-after"] == "1"
        assert excess.headers["content-type"] == PROBLEM_MEDIA_TYPE
        held.release.set()
        assert [p.result().status for p in plans] == [200] * sent  # each had its turn


def test_a_plan_that_waits_too_long_for_its_turn_is_busy(
    tmp_path: Path, held: HeldPlanning, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admission, "PLAN_WAIT_SECONDS", 0.05)
    with sending(tmp_path, held, 1) as (served, pool):
        first = pool.submit(served.plan)
        assert held.started.wait(30)
        late = served.plan()  # its wait ends while the first is still being made
        assert late.status == 503
        assert late.headers["retry-after"] == "1"
        held.release.set()
        assert first.result().status == 200
        assert served.plan().status == 200  # its turn came


def test_a_stranger_s_plan_waits_for_nothing(
    tmp_path: Path, held: HeldPlanning, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a credential that authenticates, a plan is answered 401 at once, whatever plan
    is being made: strangers' plans held the plans' places, and every viewer's was a 503."""
    monkeypatch.setattr(admission, "PLAN_WAIT_SECONDS", LONG)
    with sending(tmp_path, held, 1) as (served, pool):
        first = pool.submit(served.plan)
        assert held.started.wait(30)
        headers = {"Content-Type": "application/yaml"}
        for sent in (headers, {**headers, "Authorization": "Bearer not-a-token"}):
            assert served.ask("POST", "/api/v1/plan", sent, DOCUMENTS).status == 401
        held.release.set()
        assert first.result().status == 200
