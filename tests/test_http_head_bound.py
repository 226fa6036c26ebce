"""What an outgoing request (an http task's, a notification's) reads before its response's
final status is bounded: a server answering with ``100 Continue`` after ``100 Continue`` kept
the event loop parsing them for the whole attempt (httpx's timeout is per read, and every read
came at once), then the next attempt did it again. Now the attempt fails once the first
:data:`reconciler.httpclient.HEAD_MAX` bytes hold no final status; a head as large as httpx
reads at all still passes. Real servers on 127.0.0.1, in the test's loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from reconciler import httpclient
from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus
from reconciler.runner.base import Outcome
from reconciler.runner.http import HttpRun
from reconciler.sinks import notify_delivery
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify_delivery import Delivery, Message
from tests.http_servers import CONTINUE, Answer, interim_flood, serving
from tests.notify.test_notifier import config, counts

# Seconds: generous, only to tell "bounded" from "for as long as the timeout". Each attempt
# has an hour: nothing but the bound ends it within this.
BOUND = 30.0
NO_FINAL_STATUS = "no final status"  # in the first MiB, or after INTERIM_MAX interim heads


def http_task(url: str) -> HttpRun:
    action = HttpAction.model_validate({"url": url, "method": "POST", "timeoutSeconds": 3600})
    return HttpRun(action, env={})


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.usefixtures("no_proxy")
def test_an_endless_run_of_interim_responses_fails_the_http_task() -> None:
    async def scenario() -> Outcome:
        async with serving(interim_flood) as server:
            return await asyncio.wait_for(http_task(f"{server.url}/").run(), BOUND)

    outcome = asyncio.run(scenario())
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "RequestFailed")
    assert NO_FINAL_STATUS in outcome.message
    assert outcome.exit_code is None


@pytest.mark.usefixtures("no_proxy")
def test_an_endless_run_of_interim_responses_fails_each_notification_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crontask.notify")
    metrics = Metrics()

    async def scenario() -> list[str]:
        async with serving(interim_flood) as server:
            delivery = Delivery(
                config(tmp_path, f"{server.url}/hook", kind="generic"),
                metrics=metrics,
                backoff=0.01,
                timeout=3600,
            )
            stop = asyncio.Event()
            async with delivery.running(stop):
                delivery.enqueue(Message("hook", "failed", {"event": "failed"}))
                deadline = time.monotonic() + BOUND
                while counts(metrics)["failed"] == 0:
                    assert time.monotonic() < deadline, f"not failed in {BOUND} s"
                    await asyncio.sleep(0.02)
                stop.set()
            return server.requests

    requests = asyncio.run(scenario())
    assert counts(metrics) == {"dropped": 0, "failed": 1, "sent": 0}
    assert len(requests) == notify_delivery.MAX_ATTEMPTS  # retried, as a protocol error is
    failed = [r for r in caplog.records if r.getMessage() == "notification failed"]
    assert [r.fields["error"] for r in failed] == ["RemoteProtocolError"]  # type: ignore[attr-defined]


def test_the_bound_holds_through_a_proxy_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The proxy (named by ``HTTP_PROXY``) is what floods: its transport is bounded too."""
    for name in ("ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)

    async def scenario() -> tuple[Outcome, list[str]]:
        async with serving(interim_flood) as proxy:
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            monkeypatch.delenv("http_proxy", raising=False)
            # TEST-NET-1: never reached, the proxy answers.
            outcome = await asyncio.wait_for(http_task("http://192.0.2.1:81/").run(), BOUND)
            return outcome, proxy.requests

    outcome, requests = asyncio.run(scenario())
    assert requests == ["POST http://192.0.2.1:81/ HTTP/1.1"]
    assert outcome.reason == "RequestFailed"
    assert NO_FINAL_STATUS in outcome.message


@pytest.mark.usefixtures("no_proxy")
def test_a_head_as_large_as_httpx_reads_is_read_as_before() -> None:
    """Interim responses (a 100, a 103 of 50 KiB of links), then a final head of 90 KiB, just
    under what httpx takes for one head (100 KiB): each head is one httpx reads, so it passes,
    and so does the body after it (the heads together were past a bound of 128 KiB)."""
    links = b"".join(b"Link: </style%d.css>; rel=preload\r\n" % i for i in range(1500))
    assert len(links) > 50_000
    interim = CONTINUE + b"HTTP/1.1 103 Early Hints\r\n" + links + b"\r\n"
    big = b"".join(b"X-Filler-%05d: %s\r\n" % (i, b"f" * 75) for i in range(1000))
    assert 90_000 < len(big) < 100 * 1024
    body = b"b" * 200_000

    async def answer_writer(writer: asyncio.StreamWriter) -> None:
        writer.write(interim)
        writer.write(b"HTTP/1.1 200 OK\r\n" + big)
        writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()

    async def scenario() -> Outcome:
        async with serving(answer_writer) as server:
            return await asyncio.wait_for(http_task(f"{server.url}/").run(), BOUND)

    outcome = asyncio.run(scenario())
    assert (outcome.status, outcome.exit_code) == (RunStatus.SUCCEEDED, 200)
    assert outcome.output.startswith("bbbb")


def writing(data: bytes) -> Answer:
    """An answer of ``data``, in one write."""

    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()

    return answer


def outcome_against(answer: Answer) -> Outcome:
    """An http task's outcome against a server answering with ``answer``."""

    async def scenario() -> Outcome:
        async with serving(answer) as server:
            return await asyncio.wait_for(http_task(f"{server.url}/").run(), BOUND)

    return asyncio.run(scenario())


def interim_then_final(
    interim: int, *, final_after: float
) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    """``interim`` heads of ``100 Continue`` at once, then, ``final_after`` seconds later unless
    the client went away first, a final ``200``."""

    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(CONTINUE * interim)
        await writer.drain()
        if final_after:
            await asyncio.sleep(final_after)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    return answer


@pytest.mark.usefixtures("no_proxy")
def test_interim_heads_past_their_bound_fail_the_request_at_its_next_read() -> None:
    """Each interim head costs h11's parsing whatever its size: a MiB of "100 Continue" was
    42 000 of them, 0.45 s of the loop's CPU an attempt. Past INTERIM_MAX the next read the
    request asks for fails it; the final head, which would come 20 s later, is not waited for."""
    flood = interim_then_final(httpclient.INTERIM_MAX + 1, final_after=20.0)

    async def scenario() -> Outcome:
        async with serving(flood) as server:
            return await asyncio.wait_for(http_task(f"{server.url}/").run(), BOUND)

    outcome = asyncio.run(scenario())
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "RequestFailed")
    assert httpclient.TOO_MANY_INTERIM in outcome.message


@pytest.mark.usefixtures("no_proxy")
def test_interim_heads_past_their_bound_in_one_read_with_the_final_one_fail_the_request() -> None:
    """Heads past INTERIM_MAX and the final one after them, in one write: the read that brings
    them is the last the request asks for (h11 finds the final head in it), so the bound is
    checked after it, not only before the next. Interim heads were accepted without limit."""
    final = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    burst = CONTINUE * (httpclient.INTERIM_MAX + 1) + final
    assert len(burst) < httpclient.HEAD_READ  # one read

    outcome = outcome_against(writing(burst))
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "RequestFailed")
    assert httpclient.TOO_MANY_INTERIM in outcome.message


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.usefixtures("no_proxy")
def test_as_many_interim_heads_as_the_bound_are_read_as_before(split: bool) -> None:
    """INTERIM_MAX interim heads, then the final one (in the same write, or after a pause, so
    that it comes in a read of its own): the request succeeds."""
    answer = interim_then_final(httpclient.INTERIM_MAX, final_after=0.2 if split else 0.0)

    outcome = outcome_against(answer)
    assert (outcome.status, outcome.exit_code, outcome.output) == (RunStatus.SUCCEEDED, 200, "ok")


@pytest.mark.parametrize("end", [b"\r\n\r\n", b"\n\n", b"\r\n\n"])
def test_every_head_end_h11_takes_is_counted(end: bytes) -> None:
    """h11 ends a head at any blank line (``\\n\\r?\\n``): "100 Continue" heads ending in a
    bare LF went uncounted, and a MiB of them cost the loop 0.5 s again."""
    budget = httpclient._Budget()
    head = b"HTTP/1.1 100 Continue" + end
    budget.count(head * 10)
    for piece in (head[:-1], head[-1:], head[:-2], head[-2:]):  # split inside the end
        budget.count(piece)
    assert budget.interim == 12


def test_a_head_end_split_between_reads_is_counted_once() -> None:
    budget = httpclient._Budget()
    for chunk in (b"HTTP/1.1 100 Continue\r\n\r", b"\nHTTP/1.1 100 Continue\r\n", b"\r\n", b"X"):
        budget.count(chunk)
    assert budget.interim == 2


@pytest.mark.usefixtures("no_proxy")
def test_blank_lines_in_a_body_read_with_the_final_head_end_no_head() -> None:
    """What a read brings after the final head is its body: its blank lines are not heads, so
    a body of paragraphs read with INTERIM_MAX interim heads and the final one fails nothing."""
    body = b"paragraph\n\n" * 100
    answer = CONTINUE * httpclient.INTERIM_MAX + b"HTTP/1.1 200 OK\r\n"
    answer += b"Content-Length: %d\r\n\r\n" % len(body) + body
    assert len(answer) < httpclient.HEAD_READ  # one read

    outcome = outcome_against(writing(answer))
    assert (outcome.status, outcome.exit_code) == (RunStatus.SUCCEEDED, 200)
    assert outcome.output == body.decode()


def test_a_status_line_split_between_reads_is_told_interim_or_final() -> None:
    """One byte a read: the status's class comes in a later read than the head's first byte."""
    budget = httpclient._Budget()
    for byte in CONTINUE * 2 + b"HTTP/1.1 404 Not Found\r\n\r\n" + CONTINUE:
        budget.count(bytes([byte]))
    assert (budget.interim, budget.final) == (2, True)


def socks5_then(
    writer_answer: bytes,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A SOCKS5 proxy (no authentication) that, once asked to connect, answers the request
    itself with ``writer_answer``."""

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        methods = (await reader.readexactly(2))[1]
        await reader.readexactly(methods)
        writer.write(b"\x05\x00")
        _, _, _, kind = await reader.readexactly(4)
        size = {1: 4, 4: 16}.get(kind) or (await reader.readexactly(1))[0]
        await reader.readexactly(size + 2)  # the address and the port
        writer.write(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50")
        await reader.readuntil(b"\r\n\r\n")
        writer.write(writer_answer)
        await writer.drain()
        writer.close()

    return proxy


@pytest.mark.parametrize("interim", [httpclient.INTERIM_MAX, httpclient.INTERIM_MAX + 1])
def test_the_bound_counts_the_answer_not_the_proxy_handshake(
    monkeypatch: pytest.MonkeyPatch, interim: int
) -> None:
    """Through a SOCKS5 proxy (``ALL_PROXY``) the budget reads the proxy's binary reply before
    the answer: the first head after it was taken for the final one, and the interim heads
    after it went uncounted (3 000 passed). Each request written starts its answer's count."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    final = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def scenario() -> Outcome:
        proxy = await asyncio.start_server(socks5_then(CONTINUE * interim + final), "127.0.0.1", 0)
        port = proxy.sockets[0].getsockname()[1]
        monkeypatch.setenv("ALL_PROXY", f"socks5://127.0.0.1:{port}")
        monkeypatch.delenv("all_proxy", raising=False)
        async with proxy:
            # TEST-NET-1: never reached, the proxy answers.
            return await asyncio.wait_for(http_task("http://192.0.2.1:81/").run(), BOUND)

    outcome = asyncio.run(scenario())
    if interim > httpclient.INTERIM_MAX:
        assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "RequestFailed")
        assert httpclient.TOO_MANY_INTERIM in outcome.message
    else:
        assert (outcome.status, outcome.exit_code) == (RunStatus.SUCCEEDED, 200), outcome.message
