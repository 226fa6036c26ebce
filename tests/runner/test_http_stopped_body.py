"""An http run stopped (``Replace``, crontask's shutdown, another replica's stop) after its
response's head came keeps what came, as a timeout does: the status as its exit code, the
body received as its output, and a message that says the body was not complete. Real HTTP
server holding the body back."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus
from reconciler.runner import http
from reconciler.runner.base import Outcome
from reconciler.runner.http import HttpRun
from tests.http_servers import serving

BOUND = 20.0


async def _head_then_hold(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
    await writer.drain()
    await asyncio.Event().wait()  # the rest never comes


def test_a_run_stopped_in_its_body_keeps_its_status_and_what_came(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received: list[bytearray] = []
    read_head = http._read_head

    async def spy(response: httpx.Response, limit: int, into: bytearray) -> None:
        received.append(into)  # the head has come: the body is being read into ``into``
        await read_head(response, limit, into)

    monkeypatch.setattr(http, "_read_head", spy)

    async def scenario() -> Outcome:
        async with serving(_head_then_hold) as server:
            action = HttpAction.model_validate({"url": f"{server.url}/x", "timeoutSeconds": 60})
            attempt = HttpRun(action, env={})
            running = asyncio.ensure_future(attempt.run())
            async with asyncio.timeout(BOUND):
                while not (received and received[0]):  # "abc" has been read
                    await asyncio.sleep(0.01)
            attempt.stop("Replaced")
            return await asyncio.wait_for(running, BOUND)

    outcome = asyncio.run(scenario())
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "Replaced")
    assert outcome.exit_code == 200
    assert outcome.output == "abc"
    assert outcome.message.endswith("HTTP 200 OK; response body not complete, stopped: Replaced")


async def _hold(writer: asyncio.StreamWriter) -> None:
    await asyncio.Event().wait()  # no answer


def test_a_run_stopped_before_its_answer_names_its_request() -> None:
    """As a timeout's message does: the method and the URL as shown (no credentials, no
    path, no query values)."""

    async def scenario() -> tuple[Outcome, str]:
        async with serving(_hold) as server:
            host = server.url.removeprefix("http://")
            url = f"http://user:pw@{host}/hooks/s3cr3t-path?token=s3cr3tvalue&plain=1"
            action = HttpAction.model_validate({"method": "PUT", "url": url, "timeoutSeconds": 60})
            attempt = HttpRun(action, env={})
            running = asyncio.ensure_future(attempt.run())
            async with asyncio.timeout(BOUND):
                while not server.requests:  # the request has come; no answer will
                    await asyncio.sleep(0.01)
            attempt.stop("Replaced")
            return await asyncio.wait_for(running, BOUND), host

    outcome, host = asyncio.run(scenario())
    assert (outcome.status, outcome.reason, outcome.exit_code) == (
        RunStatus.FAILED,
        "Replaced",
        None,
    )
    assert (
        outcome.message
        == f"PUT http://{host}/***?token=***&plain=***: no response, stopped: Replaced"
    )
