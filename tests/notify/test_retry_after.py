"""A receiver that says when to come back (``Retry-After`` on 429 or 503: a rate limit, as
Slack's, or maintenance) is waited for, up to a cap; what it says that makes no sense leaves
the backoff as it was. A real receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.sinks import notify_delivery, notify_failures
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from tests.notify.receiver import receiving
from tests.notify.test_hostile_receivers import BOUND
from tests.notify.test_notifier import SECRET, T0, config, counts, finished, running, until

NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("30", 30.0),
        (" 30 ", 30.0),
        ("0", 0.0),
        ("9999999999", 9999999999.0),  # the caller caps it
        ("Fri, 27 Nov 2026 01:00:30 GMT", 30.0),  # the IMF-fixdate
        ("Friday, 27-Nov-26 01:00:30 GMT", 30.0),  # and the two obsolete forms
        ("Fri Nov 27 01:00:30 2026", 30.0),
        ("Fri, 27 Nov 2026 02:00:30 +0100", 30.0),
        ("Thu, 26 Nov 2026 01:00:00 GMT", 0.0),  # in the past: no wait asked
        # Nothing that can be read: the backoff stands.
        ("-5", None),
        ("1.5", None),
        ("+5", None),
        ("", None),
        ("soon", None),
        ("30 seconds", None),
        ("9" * 11, None),
        ("9" * 5000, None),
        ("Fri, 27 Nov 2026 25:00:30 GMT", None),
        ("Sun, 06 Nov 99999 08:49:37 GMT", None),
        ("Fri, 27 Nov 2026", None),
        ("x" * 10_000, None),
    ],
)
def test_what_retry_after_asks(value: str | None, seconds: float | None) -> None:
    assert notify_failures.retry_after(value, NOW) == seconds


def waits(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The wait before each retry, as the sender logged it."""
    return [
        r.__dict__["fields"]["in_seconds"]
        for r in caplog.records
        if r.getMessage() == "notification not delivered; retrying"
    ]


@pytest.mark.parametrize("status", [429, 503])
def test_a_receiver_s_retry_after_is_waited_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    metrics = Metrics()
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    with receiving(SECRET) as receiver:
        receiver.failures_left, receiver.fail_status = 1, status
        receiver.fail_headers = {"Retry-After": "1"}
        notifier = Notifier(config(tmp_path, receiver.url), metrics=metrics, backoff=0.01)

        async def body() -> None:
            notifier.on_run(finished(RunStatus.FAILED, T0))
            await until(receiver, 2)

        running(notifier, body)
    first, second = receiver.received
    assert second.at - first.at >= 1.0  # not the backoff's 0.01 s
    assert waits(caplog) == [1.0]
    assert counts(metrics) == {"dropped": 0, "failed": 0, "sent": 1}


@pytest.mark.parametrize(
    ("status", "value"),
    [
        (429, "-5"),
        (429, "garbage"),
        (503, "9" * 5000),
        (503, "Sun, 06 Nov 99999 08:49:37 GMT"),
        (500, "1"),  # only a rate limit or maintenance says when: a 500 is retried as ever
    ],
)
def test_a_retry_after_that_makes_no_sense_leaves_the_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int, value: str
) -> None:
    metrics = Metrics()
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    with receiving(SECRET) as receiver:
        receiver.failures_left, receiver.fail_status = 2, status
        receiver.fail_headers = {"Retry-After": value}
        notifier = Notifier(config(tmp_path, receiver.url), metrics=metrics, backoff=0.01)

        async def body() -> None:
            notifier.on_run(finished(RunStatus.FAILED, T0))
            await until(receiver, 3)

        running(notifier, body)
    assert waits(caplog) == [0.01, 0.02]
    assert counts(metrics) == {"dropped": 0, "failed": 0, "sent": 1}


def test_a_long_retry_after_is_capped_and_the_wait_ends_at_shutdown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    with receiving(SECRET) as receiver:
        receiver.failures_left, receiver.fail_status = 10**6, 429
        receiver.fail_headers = {"Retry-After": "3600"}
        notifier = Notifier(config(tmp_path, receiver.url), metrics=metrics, backoff=0.01)

        async def scenario() -> float:
            stop, ready = asyncio.Event(), asyncio.Event()
            component = asyncio.create_task(notifier.run(ready.set, stop))
            await asyncio.wait_for(ready.wait(), 5)
            notifier.on_run(finished(RunStatus.FAILED, T0))
            deadline = time.monotonic() + BOUND
            while not waits(caplog):  # the sender waits now
                assert time.monotonic() < deadline, "no retry was planned"
                await asyncio.sleep(0.02)
            for task in ("default/u", "default/v"):  # two more failures queued behind it
                notifier.on_run(finished(RunStatus.FAILED, T0, key=task))
            while sum(len(q) for q in notifier.queues.values()) < 2:
                assert time.monotonic() < deadline, "the failures were not queued"
                await asyncio.sleep(0.02)
            stop.set()
            started = time.monotonic()
            await asyncio.wait_for(component, notify_delivery.SHUTDOWN_SECONDS + BOUND)
            return time.monotonic() - started

        took = asyncio.run(scenario())
    assert waits(caplog) == [notify_delivery.RETRY_AFTER_MAX]
    assert took < notify_delivery.RETRY_AFTER_MAX
    # Woken by the stop before the time the receiver asked for, it gave up without asking
    # again, and the messages queued behind it were dropped unsent: each would have been
    # refused the same way (it sent one request per message before).
    assert len(receiver.received) == 1
    assert counts(metrics) == {"dropped": 2, "failed": 1, "sent": 0}


def test_the_next_message_waits_for_what_the_receiver_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message given up after a 429 leaves the receiver's Retry-After in force: the next
    one is not sent sooner."""
    monkeypatch.setattr(notify_delivery, "MAX_ATTEMPTS", 1)
    metrics = Metrics()
    with receiving(SECRET) as receiver:
        receiver.failures_left, receiver.fail_status = 1, 429
        receiver.fail_headers = {"Retry-After": "1"}
        notifier = Notifier(config(tmp_path, receiver.url), metrics=metrics, backoff=0.01)

        async def body() -> None:
            notifier.on_run(finished(RunStatus.FAILED, T0))
            notifier.on_run(finished(RunStatus.FAILED, T0, key="default/u"))
            await until(receiver, 2)

        running(notifier, body)
    first, second = receiver.received
    assert second.at - first.at >= 1.0
    assert counts(metrics) == {"dropped": 0, "failed": 1, "sent": 1}
