"""A receiver that is down under a flood of runs must not flood the log too: the messages a
full queue pushes out are said in one line per receiver now and then (with how many), and
what fails or is dropped after the stop in one line per receiver. Every message is still
counted in the metric."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from reconciler.sinks import notify_delivery
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify_delivery import Delivery, Message
from tests.helpers import free_port
from tests.notify.receiver import receiving
from tests.notify.test_notifier import config, counts

QUEUE = 10  # the queue's bound here, so that the flood is small


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[dict[str, object]]:
    return [
        r.__dict__["fields"]
        for r in caplog.records
        if r.getMessage() == text and r.levelno >= logging.WARNING
    ]


def flood(delivery: Delivery, count: int) -> None:
    for n in range(count):
        delivery.enqueue(Message("hook", "everyFailure", {"n": n}))


def test_drops_are_said_with_their_count_at_most_once_an_interval_and_when_drained(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify_delivery, "QUEUE_MAX", QUEUE)
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    clock, metrics = Clock(), Metrics()
    with receiving() as receiver:
        delivery = Delivery(
            config(tmp_path, receiver.url, kind="generic"), metrics=metrics, clock=clock
        )
        flood(delivery, QUEUE + 300)  # no sender yet: 300 pushed out, the first said at once
        clock.now += notify_delivery.DROPS_SAID_EVERY
        flood(delivery, 1)  # an interval later: the 299 since, and this one
        flood(delivery, 50)  # within the interval: said when the queue drains

        async def main() -> None:
            stop = asyncio.Event()
            async with delivery.running(stop):
                await asyncio.to_thread(receiver.wait_for, QUEUE)
                while delivery.queues["hook"]:
                    await asyncio.sleep(0.01)
                stop.set()

        asyncio.run(main())
    dropped = lines(caplog, "notification dropped: the receiver's queue is full")
    assert [line["dropped"] for line in dropped] == [1, 300, 50]
    assert all(line["receiver"] == "hook" for line in dropped)
    assert counts(metrics) == {"dropped": 351, "failed": 0, "sent": QUEUE}


def test_what_fails_at_shutdown_is_said_in_one_line_per_receiver(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The receiver is down when crontask stops with messages queued: each is tried once (a
    refused connection fails at once), and none gets a line of its own."""
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    metrics = Metrics()
    delivery = Delivery(
        config(tmp_path, f"http://127.0.0.1:{free_port()}/down", kind="generic"), metrics=metrics
    )
    queued = 200

    async def main() -> None:
        stop = asyncio.Event()
        async with delivery.running(stop):
            stop.set()
            flood(delivery, queued)

    asyncio.run(main())
    assert lines(caplog, "notification failed") == []
    [summary] = lines(caplog, "notifications not delivered before shutdown")
    assert summary["receiver"] == "hook"
    assert summary["failed"] + summary["dropped"] == queued  # type: ignore[operator]
    found = counts(metrics)
    assert found["failed"] + found["dropped"] == queued
    assert (found["failed"], found["dropped"]) == (summary["failed"], summary["dropped"])
