"""Delivery stays bounded whatever a receiver (or its URL) does: a slow or endless answer, a
URL httpx cannot send to, an error httpx does not wrap. Real receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from reconciler.core.runs import RunStatus
from reconciler.sinks import notify
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from tests.notify.receiver import EndlessBody, receiving, slow_body, slow_headers
from tests.notify.test_notifier import SECRET, T0, config, counts, finished, running

EVERY_FAILURE = "  - receiver: hook\n    events: [everyFailure]\n"
BOUND = 30.0  # seconds: generous, only to prove "bounded", not "for ever"


async def counted(metrics: Metrics, result: str, count: int = 1) -> None:
    """Until ``count`` outcomes ``result`` are counted; AssertionError after :data:`BOUND`."""
    deadline = time.monotonic() + BOUND
    while counts(metrics)[result] < count:
        assert time.monotonic() < deadline, f"no {result!r} after {BOUND} s: {counts(metrics)}"
        await asyncio.sleep(0.02)


def test_an_endless_answer_is_not_read(tmp_path: Path) -> None:
    metrics = Metrics()
    endless = EndlessBody(cap=64 * 1024 * 1024)
    with receiving(SECRET) as receiver:
        receiver.answer = endless
        notifier = Notifier(config(tmp_path, receiver.url), metrics=metrics, backoff=0.01)

        async def body() -> None:
            notifier.on_run(finished(RunStatus.FAILED, T0))
            await counted(metrics, "sent")

        running(notifier, body)
        assert endless.done.wait(BOUND)
    assert counts(metrics) == {"dropped": 0, "failed": 0, "sent": 1}
    # The client hung up after the status: what the receiver could write is what the sockets'
    # buffers hold, not the body (and nothing of it was kept in memory).
    assert endless.written < endless.cap


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_short_answer_is_read_so_its_connection_carries_the_next_message(
    tmp_path: Path, gzipped: bool
) -> None:
    # A receiver answering 200 "ok" over HTTP/1.1, as Slack's webhooks do: reading those two
    # bytes lets httpx keep the connection, so the next messages need no new TCP (and TLS)
    # handshake. Left unread, the connection was closed after each message.
    # An encoded one is not: httpx would decode it on the loop's thread, and 600 bytes of
    # `gzip, gzip` decode to 256 MiB. Its connection is closed, so each message has its own.
    metrics = Metrics()
    with receiving(SECRET, keep_alive=True, gzipped=gzipped) as receiver:
        notifier = Notifier(
            config(tmp_path, receiver.url, route=EVERY_FAILURE), metrics=metrics, backoff=0.01
        )

        async def body() -> None:
            for second in range(3):
                notifier.on_run(finished(RunStatus.FAILED, T0 + timedelta(seconds=second)))
                await counted(metrics, "sent", second + 1)

        running(notifier, body)
        received = receiver.wait_for(3)
    assert [r.signed_correctly for r in received] == [True, True, True]
    assert len({r.port for r in received}) == (3 if gzipped else 1), [r.port for r in received]


def test_a_slow_body_after_a_200_is_left_and_the_message_is_sent(tmp_path: Path) -> None:
    metrics = Metrics()
    with receiving(SECRET) as receiver:
        receiver.answer = slow_body(0.1)
        notifier = Notifier(
            config(tmp_path, receiver.url), metrics=metrics, backoff=0.01, timeout=0.5
        )

        async def body() -> None:
            notifier.on_run(finished(RunStatus.FAILED, T0))
            await counted(metrics, "sent")

        running(notifier, body)
    # Once: the attempt ended "sent" though the body never came whole, and was not retried.
    assert counts(metrics) == {"dropped": 0, "failed": 0, "sent": 1}
    assert len(receiver.received) == 1


def test_a_receiver_that_answers_a_byte_at_a_time_is_given_up(tmp_path: Path) -> None:
    metrics = Metrics()
    with receiving(SECRET) as receiver:
        # A byte every 0.1 s: httpx's timeout, which is per read, would never end the attempt.
        receiver.answer = slow_headers(0.1)
        notifier = Notifier(
            config(tmp_path, receiver.url), metrics=metrics, backoff=0.01, timeout=0.5
        )

        async def body() -> None:
            notifier.on_run(finished(RunStatus.FAILED, T0))
            await counted(metrics, "failed")

        running(notifier, body)
    assert counts(metrics) == {"dropped": 0, "failed": 1, "sent": 0}
    assert len(receiver.received) == notify.MAX_ATTEMPTS  # a timeout is retried


def test_shutdown_cancels_a_delivery_under_way(tmp_path: Path) -> None:
    metrics = Metrics()
    with receiving(SECRET) as receiver:
        receiver.answer = slow_headers(0.1)
        # A long deadline per attempt: only the shutdown can end this one in time.
        notifier = Notifier(config(tmp_path, receiver.url), metrics=metrics, timeout=600)

        async def scenario() -> float:
            stop, ready = asyncio.Event(), asyncio.Event()
            component = asyncio.create_task(notifier.run(ready.set, stop))
            await asyncio.wait_for(ready.wait(), 5)
            notifier.on_run(finished(RunStatus.FAILED, T0))
            await asyncio.to_thread(receiver.wait_for, 1)  # the delivery is under way
            stop.set()
            started = time.monotonic()
            await asyncio.wait_for(component, notify.SHUTDOWN_SECONDS + BOUND)
            return time.monotonic() - started

        took = asyncio.run(scenario())
    assert took < notify.SHUTDOWN_SECONDS + BOUND
    assert counts(metrics) == {"dropped": 1, "failed": 0, "sent": 0}


def test_a_url_httpx_cannot_send_to_fails_and_the_sender_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    with receiving(SECRET) as receiver:
        notifier = Notifier(
            config(tmp_path, receiver.url, route=EVERY_FAILURE), metrics=metrics, backoff=0.01
        )

        async def body() -> None:
            # urlFile is read at each delivery: rotated to a port no socket has.
            (tmp_path / "url").write_text("http://127.0.0.1:99999/secret-path-token\n")
            notifier.on_run(finished(RunStatus.FAILED, T0))
            await counted(metrics, "failed")
            (tmp_path / "url").write_text(receiver.url + "\n")  # fixed
            notifier.on_run(finished(RunStatus.FAILED, T0.replace(minute=1)))
            await counted(metrics, "sent")

        running(notifier, body)
    assert counts(metrics) == {"dropped": 0, "failed": 1, "sent": 1}
    assert "secret-path-token" not in caplog.text


class Breaking(httpx.AsyncHTTPTransport):
    """A real transport whose first request fails with an error httpx does not wrap (as a
    port out of range once did: OverflowError from the socket layer)."""

    def __init__(self) -> None:
        super().__init__()
        self.breaks = 1

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.breaks:
            self.breaks -= 1
            raise OverflowError("connect(): port must be 0-65535: secret-path-token")
        return await super().handle_async_request(request)


def test_an_unexpected_error_fails_one_message_not_the_sender(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    with receiving(SECRET) as receiver:
        notifier = Notifier(
            config(tmp_path, receiver.url, route=EVERY_FAILURE),
            metrics=metrics,
            backoff=0.01,
            transport=Breaking(),
        )

        async def body() -> None:
            notifier.on_run(finished(RunStatus.FAILED, T0))
            await counted(metrics, "failed")
            notifier.on_run(finished(RunStatus.FAILED, T0.replace(minute=1)))
            await counted(metrics, "sent")

        running(notifier, body)
    assert counts(metrics) == {"dropped": 0, "failed": 1, "sent": 1}
    assert len(receiver.received) == 1
    failed = [r for r in caplog.records if r.getMessage() == "notification failed"]
    assert [r.__dict__["fields"]["error"] for r in failed] == ["OverflowError"]
    assert "secret-path-token" not in caplog.text
