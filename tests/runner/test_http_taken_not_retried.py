"""A request whose answer brought a status ``expectStatus`` accepts was taken by the server:
when its body then breaks off, or is still arriving at the timeout, the run fails (or times
out) with that status kept, and is not retried, since a retry would send the request again
and do the slot's work twice (README, *The HTTP action*). A status the task does not accept
is retried as before. Real HTTP servers, real runs through the dispatcher."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.runs import RunRecord, RunStatus, run_id
from reconciler.store import MemoryRunStore
from tests.helpers import definition, local_actions, serve_http

from .test_http_echoed_secrets import SLOT


class _Answers(BaseHTTPRequestHandler):
    """Counts the POSTs it gets; answers each with ``STATUS``, a ``Content-Length`` of 100 and
    10 bytes of the body, then closes the connection (``HOLD``: keeps it open, silent, until
    the test ends)."""

    STATUS: ClassVar[int] = 200
    HOLD: ClassVar[bool] = False
    requests: ClassVar[list[str]]
    done: ClassVar[threading.Event]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.requests.append(self.headers.get("X-Crontask-Attempt") or "")
        self.send_response(self.STATUS)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b"0123456789")
        self.wfile.flush()
        if self.HOLD:
            self.done.wait(30)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


def _run(status: int, hold: bool = False, **http: Any) -> tuple[RunStatus, list[str], RunRecord]:
    """One run of a task POSTing to a server that answers ``status`` and cuts (or, ``hold``,
    holds) the body, with two retries at no backoff: the last attempt's status, the attempts
    the server got, and the first attempt's record."""

    class Answers(_Answers):
        STATUS = status
        HOLD = hold
        requests: ClassVar[list[str]] = []
        done = threading.Event()

    store = MemoryRunStore()
    d = Dispatcher(store, owner="h:1:a", clock=lambda: SLOT, actions=local_actions())
    try:
        with serve_http(Answers) as url:
            task = definition(
                "hook",
                http={"method": "POST", "url": f"{url}/charge", "body": "{}", **http},
                retry={"limit": 2, "backoffSeconds": 0},
                command=None,
            )

            async def scenario() -> None:
                d.fire(task, SLOT)
                assert await d.drain(20)

            asyncio.run(scenario())
            Answers.done.set()
    finally:
        Answers.done.set()
    first = store.get(run_id("default/hook", SLOT), attempt=1)
    last = store.get(run_id("default/hook", SLOT))
    assert first is not None
    assert last is not None
    return last.status, list(Answers.requests), first


def test_a_taken_request_whose_body_broke_off_is_not_sent_again() -> None:
    status, requests, record = _run(200)
    assert requests == ["1"]
    assert status is RunStatus.FAILED
    assert record.exit_code == 200
    assert record.reason == "RequestFailed"
    assert record.output.startswith("0123456789")
    assert record.message is not None
    assert "cut short" in record.message
    assert record.message.endswith("; not retried: the server took the request (HTTP 200)")


def test_a_status_not_accepted_whose_body_broke_off_is_retried() -> None:
    status, requests, record = _run(503)
    assert requests == ["1", "2", "3"]
    assert status is RunStatus.FAILED
    assert record.message is not None
    assert "not retried" not in record.message


@pytest.mark.slow
def test_a_taken_request_whose_body_is_late_times_out_and_is_not_sent_again() -> None:
    status, requests, record = _run(200, hold=True, timeoutSeconds=1)
    assert requests == ["1"]
    assert status is RunStatus.TIMED_OUT
    assert record.exit_code == 200
    assert record.reason == "DeadlineExceeded"
    assert record.message is not None
    assert record.message.endswith("; not retried: the server took the request (HTTP 200)")
