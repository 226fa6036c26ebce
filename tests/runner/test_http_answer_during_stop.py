"""An http attempt's answer that came while crontask was stopped (SIGSTOP, a frozen VM) past its
deadline is taken, not recorded ``timedOut`` (and retried: the request sent twice); a real
timeout still times out at once.

The stop here is the event loop's thread held (a loop held up in a callback) while a real
server, in a thread of its own, answers, and the loop's clock moved on past the deadline as a
stop moves it: the loop's next round finds both the answer in the socket and the deadline
passed. The deadline is far, so that only the stop passes it: a loaded machine's slow start
of a request (its first TLS context, a connection) cannot. A real SIGSTOP, whose first round
after SIGCONT reads nothing (``test_http_answer_during_sigstop``), is slower to test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus
from reconciler.runner import http_deadline
from reconciler.runner.base import Outcome
from reconciler.runner.http import HttpRun
from tests.http_held import BOUND, HeldAnswer, StoppableLoop, run_stoppable

TIMEOUT = 30.0  # the attempt's; the stop lasts longer (on the loop's clock)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[HeldAnswer]:
    served = HeldAnswer(request.param)
    try:
        yield served
    finally:
        served.close()


def _attempt(url: str, timeout: float = TIMEOUT) -> HttpRun:
    action = HttpAction.model_validate(
        {"method": "POST", "url": url, "body": "x", "timeoutSeconds": 60}
    )
    return HttpRun(action, env={}, timeout=timeout)


async def _stopped_while_answered(server: HeldAnswer) -> Outcome:
    """The attempt, crontask stopped from just after the server had its request until after
    the deadline, the server's answer sent meanwhile."""
    running = asyncio.ensure_future(_attempt(server.url).run())
    assert await asyncio.to_thread(server.received.wait, BOUND)
    # Stopped: nothing of the loop's runs until this callback ends, its clock past the
    # deadline (which began before the request was sent) when it does.
    server.release.set()
    assert server.answered.wait(BOUND)
    loop = asyncio.get_running_loop()
    assert isinstance(loop, StoppableLoop)
    loop.stopped_for += TIMEOUT + 1
    return await asyncio.wait_for(running, BOUND)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\ndone\n"


@pytest.mark.parametrize("server", [OK], indirect=True)
def test_an_answer_that_came_during_a_stop_is_taken(server: HeldAnswer) -> None:
    outcome = run_stoppable(_stopped_while_answered(server))
    assert (outcome.status, outcome.exit_code, outcome.output) == (
        RunStatus.SUCCEEDED,
        200,
        "done\n",
    )
    assert outcome.message == "HTTP 200 OK"
    assert server.requests == 1


@pytest.mark.parametrize(
    "server", [b"HTTP/1.1 503 Busy\r\nContent-Length: 3\r\n\r\nno\n"], indirect=True
)
def test_a_failing_answer_that_came_during_a_stop_is_taken(server: HeldAnswer) -> None:
    outcome = run_stoppable(_stopped_while_answered(server))
    assert (outcome.status, outcome.reason, outcome.exit_code) == (
        RunStatus.FAILED,
        "UnexpectedStatus",
        503,
    )


@pytest.mark.parametrize("server", [b""], indirect=True)
def test_no_answer_during_a_stop_times_out_at_once(
    server: HeldAnswer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not by the bound on catching up: the first look finds nothing to take.
    monkeypatch.setattr(http_deadline, "CATCH_UP", 3600.0)
    outcome = run_stoppable(_stopped_while_answered(server))
    assert (outcome.status, outcome.reason) == (RunStatus.TIMED_OUT, "DeadlineExceeded")
    assert outcome.message.startswith("POST http://127.0.0.1:")
    assert outcome.message.endswith("/***?token=***: no response within 30s")


@pytest.mark.parametrize(
    "server", [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc"], indirect=True
)
def test_a_head_that_came_during_a_stop_times_out_waiting_for_its_body(
    server: HeldAnswer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_deadline, "CATCH_UP", 3600.0)
    outcome = run_stoppable(_stopped_while_answered(server))
    assert (outcome.status, outcome.exit_code, outcome.output) == (
        RunStatus.TIMED_OUT,
        200,
        "abc",
    )
    assert outcome.message.endswith(
        "HTTP 200 OK; response body not complete within 30s; "
        "not retried: the server took the request (HTTP 200)"
    )


@pytest.mark.parametrize("server", [b""], indirect=True)
def test_a_timeout_without_a_stop_is_at_the_deadline(
    server: HeldAnswer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_deadline, "CATCH_UP", 3600.0)

    async def scenario() -> tuple[Outcome, float]:
        began = time.monotonic()
        outcome = await asyncio.wait_for(_attempt(server.url, 0.3).run(), BOUND)
        return outcome, time.monotonic() - began

    outcome, took = asyncio.run(scenario())
    assert outcome.status is RunStatus.TIMED_OUT
    assert 0.3 <= took < BOUND
