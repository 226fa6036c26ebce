"""Events against an API server that does not answer as it should, a scripted one: accepting
and never answering (each try ends at the recorder's short read timeout, and only the held
Event is tried again, those behind it untried), answering 429 or 5xx (tried again, as client-go
does, not refused), and back while a stop waits (the next try decides, not the outage before)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.run_events import EventSpec
from reconciler.core.status import ObjectRef
from reconciler.sinks.kubernetes_events import EventRecorder
from tests.helpers import serve_http, wait_for
from tests.k8s.test_events_refused import logged

REF = ObjectRef("default", "a", "uid-a", "1", 1)
RETRYING = "event not sent: no answer from the API server; retrying"
GIVEN_UP = "event not recorded: no answer from the API server"
Step = str | int | tuple[int, str]  # a status with its Retry-After


class Script:
    """What the server does with each create, in order: ``"hold"`` (no answer until the test
    ends), ``"close"`` (the connection closed, no answer), ``"wait"`` (answered once ``go`` is
    set), a status (refused with it), a status and a Retry-After; past the script, created."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.tried: list[int] = []  # each create's Event, by its number
        self.go = threading.Event()
        self.done = threading.Event()  # the test ended: held requests let go
        self.lock = threading.Lock()

    def next(self, message: str) -> Step:
        with self.lock:
            self.tried.append(int(re.sub(r"\D", "", message)))
            return self.steps.pop(0) if self.steps else "created"


def handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            step = script.next(json.loads(body)["message"])
            if step in ("hold", "close"):
                if step == "hold":
                    script.done.wait()
                self.close_connection = True
                return
            if step == "wait":
                script.go.wait()
            status, after = step if isinstance(step, tuple) else (step, None)
            if isinstance(status, int):
                body = json.dumps({"kind": "Status", "code": status}).encode()
            self.send_response(status if isinstance(status, int) else 201)
            if after is not None:
                self.send_header("Retry-After", after)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def caught(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="crontask.sinks")
    return caplog


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(script)``: an API client to a server that follows ``script``."""
    scripts: list[Script] = []
    with contextlib.ExitStack() as stack:

        def start(script: Script) -> Any:
            scripts.append(script)
            url = stack.enter_context(serve_http(handler(script)))
            configuration = client.Configuration()
            configuration.host = url
            api = client.ApiClient(configuration)
            stack.callback(api.close)
            return api

        try:
            yield start
        finally:
            for script in scripts:
                script.done.set()
                script.go.set()


def recorder_of(api: Any, **kwargs: Any) -> EventRecorder:
    recorder = EventRecorder(api, qps=100.0, retry_seconds=0.01, **kwargs)
    recorder.start()
    return recorder


def failing(n: int) -> EventSpec:
    return EventSpec("Warning", "RunFailed", f"exit code {n}")


def test_a_server_that_never_answers_is_tried_with_the_held_event_only(
    serve: Any, caught: pytest.LogCaptureFixture
) -> None:
    script = Script(*["hold"] * 20)
    recorder = recorder_of(serve(script), retries=2)
    recorder.request_timeout = (5, 0.1)  # its read timeout, as each try ends
    try:
        for n in range(3):
            recorder.emit(REF, failing(n))
        wait_for("seven tries", lambda: len(script.tried) >= 7)
    finally:
        recorder.stop()
    # The first Event tried three times (its bound) and given up, then the second: those
    # behind the one tried waited untried (on the old code, 0, 1, 2, 0, 1, 2, ...).
    assert script.tried[:7] == [0, 0, 0, 1, 1, 1, 2]
    assert recorder.created == 0
    assert [(m, f["error"].split(":")[0], f["tries"]) for m, _, f in logged(caught)[:2]] == [
        (RETRYING, "ReadTimeoutError", 1),
        (GIVEN_UP, "ReadTimeoutError", 3),
    ]


def test_429_and_5xx_are_tried_again_not_refused(
    serve: Any, caught: pytest.LogCaptureFixture
) -> None:
    script = Script(429, 503, "created", 500, 503, 504)
    recorder = recorder_of(serve(script), retries=2)
    try:
        recorder.emit(REF, failing(0))
        recorder.emit(REF, failing(1))
        wait_for("the second Event given up", lambda: recorder.dropped == 1)
    finally:
        recorder.stop()
    assert script.tried == [0, 0, 0, 1, 1, 1]
    assert (recorder.created, recorder.refused, recorder.retried) == (1, 0, 4)
    # Answered: the line says what the answer was, not that there was none.
    lines = [(m, f["error"], f["tries"]) for m, _, f in logged(caught)]
    assert lines == [
        ("event not sent: the API server answered 429; retrying", "HTTP 429: Too Many Requests", 1),
        ("event not recorded: the API server answered 504", "HTTP 504: Gateway Timeout", 3),
    ]


def test_a_stop_waits_for_the_try_after_an_outage(
    serve: Any, caught: pytest.LogCaptureFixture
) -> None:
    script = Script("close", "wait")
    recorder = recorder_of(serve(script))
    for n in range(3):
        recorder.emit(REF, failing(n))
    wait_for("the try after the outage", lambda: len(script.tried) == 2)
    # The server is back, that try not answered yet: the stop waits for it, and for the
    # Events queued behind it (on the old code, it gave them up at once, untried).
    script.go.set()
    recorder.stop(20.0)
    assert (recorder.created, recorder.dropped) == (3, 0)
    assert script.tried == [0, 0, 1, 2]
    assert [m for m, _, _ in logged(caught)] == [RETRYING]
