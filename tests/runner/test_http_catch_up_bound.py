"""An http attempt back from a stop past its deadline reads what came meanwhile; a sender that
keeps bytes coming holds it no longer than its timeout once more (at least
``http_deadline.CATCH_UP``), however long the stop was: not for as long as the stop lasted (an
hour's stop, an hour past the timeout).

A sender whose bytes are always there to read, round after round (a body of one-byte chunks
behind long chunk extensions, as fast as the attempt reads them), is the deadline's look
finding something to take at every round: so modelled here, deterministically, behind a real
server that sends a head and the start of a body. The stops are the loop's thread held while
its clock moves on, as a stop of the process moves it."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus
from reconciler.runner import http, http_deadline
from reconciler.runner.base import Outcome
from reconciler.runner.http import HttpRun
from tests.http_held import BOUND, StoppableLoop, run_stoppable
from tests.http_servers import serving

TIMEOUT = 30.0  # the attempt's, on the loop's clock
STOP = 3600.0  # the first stop: far longer than the timeout


async def _head_then_hold(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
    await writer.drain()
    await asyncio.Event().wait()


def test_a_sender_that_keeps_bytes_coming_after_a_long_stop_is_cut_within_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_deadline.Deadline, "_pending", lambda self: True)
    bodies: list[bytearray] = []
    read_head = http._read_head

    async def spy(response: httpx.Response, limit: int, into: bytearray) -> None:
        bodies.append(into)  # the head has come: the body is read into ``into``
        await read_head(response, limit, into)

    monkeypatch.setattr(http, "_read_head", spy)

    async def scenario() -> Outcome:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, StoppableLoop)
        async with serving(_head_then_hold) as server:
            action = HttpAction.model_validate({"url": server.url, "timeoutSeconds": 60})
            running = asyncio.ensure_future(HttpRun(action, env={}, timeout=TIMEOUT).run())
            async with asyncio.timeout(BOUND):
                while not (bodies and bodies[0]):  # "abc" has been read
                    await asyncio.sleep(0.01)
            loop.stopped_for += STOP  # the deadline long past: the attempt catches up...
            for _ in range(3):
                await asyncio.sleep(0)
            assert not running.done()
            loop.stopped_for += TIMEOUT  # ...until a stop as long as its timeout ends that
            return await asyncio.wait_for(running, BOUND)

    outcome = run_stoppable(scenario())
    assert (outcome.status, outcome.exit_code, outcome.output) == (RunStatus.TIMED_OUT, 200, "abc")
    assert outcome.message.endswith(
        "HTTP 200 OK; response body not complete within 30s; "
        "not retried: the server took the request (HTTP 200)"
    )
