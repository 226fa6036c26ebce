"""Notifications under a storm: thousands of tasks failing together fill a receiver's queue.

The queue stays bounded; what waits in it is a gauge, ``crontask_notifications_queued``, so a
backlog shows while it builds; what a full queue pushes out is counted ``dropped`` (never
``failed``, which says the receiver refused a message), and said in one line now and then with
how many, not a line a message."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from reconciler.sinks import notify_delivery
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify_delivery import Delivery, Message
from reconciler.sinks.notify_queue import MessageQueue
from tests.notify.receiver import Answer, receiving
from tests.notify.test_notifier import config, counts

QUEUE = 20  # the queue's bound here, so that the storm is small
DROPPED_LINE = "notification dropped: the receiver's queue is full"


def queued(metrics: Metrics, receiver: str = "hook") -> float | None:
    """The gauge as a scrape shows it, read back through prometheus_client's parser."""
    return metrics.registry.get_sample_value(
        "crontask_notifications_queued", {"receiver": receiver}
    )


def failure(n: int, event: str = "everyFailure") -> Message:
    return Message("hook", event, {"n": n})


def test_the_queue_tells_each_change_of_its_length_and_never_holds_more_than_its_bound() -> None:
    told: list[int] = []
    queue = MessageQueue(told.append)
    for n in range(5):
        queue.append(failure(n), 3)
    assert told == [1, 2, 3]  # the two that pushed one out left it at 3: nothing to tell
    assert len(queue) == 3
    first = queue.popleft()
    queue.appendleft(first)
    queue.clear()
    assert told == [1, 2, 3, 2, 3, 0]


def test_a_storm_is_queued_to_the_bound_and_the_rest_counted_dropped_not_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify_delivery, "QUEUE_MAX", QUEUE)
    metrics = Metrics()
    delivery = Delivery(
        config(tmp_path, "http://127.0.0.1:1/hook", kind="generic"), metrics=metrics
    )
    assert queued(metrics) == 0  # from the start, so an alert on it sees the first backlog
    text = metrics.render()[0].decode()
    assert "# TYPE crontask_notifications_queued gauge\n" in text
    for n in range(QUEUE - 1):
        delivery.enqueue(failure(n))
    assert queued(metrics) == QUEUE - 1  # a backlog building shows before anything is lost
    assert counts(metrics) == {"dropped": 0, "failed": 0, "sent": 0}
    for n in range(1000):  # no sender runs: the storm
        delivery.enqueue(failure(n))
    assert queued(metrics) == QUEUE
    assert len(delivery.queues["hook"]) == QUEUE
    assert counts(metrics) == {"dropped": 1000 - 1, "failed": 0, "sent": 0}


def gate(opened: threading.Event) -> Answer:
    """A receiver that holds each request until ``opened``, then accepts it."""

    def answer(handler: BaseHTTPRequestHandler, closing: threading.Event) -> None:
        while not (opened.wait(0.05) or closing.is_set()):
            pass
        handler.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")

    return answer


def test_a_slow_receiver_under_a_storm_shows_its_backlog_drops_and_one_line_for_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A real receiver holds the first message while a storm comes: the gauge says how many
    wait, the metric how many were dropped (not failed), the log one line at the first drop
    and one with the rest when the queue has drained; then the backlog goes to 0."""
    monkeypatch.setattr(notify_delivery, "QUEUE_MAX", QUEUE)
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    metrics = Metrics()
    opened = threading.Event()
    with receiving() as receiver:
        receiver.answer = gate(opened)
        delivery = Delivery(config(tmp_path, receiver.url, kind="generic"), metrics=metrics)

        async def main() -> None:
            stop = asyncio.Event()
            async with delivery.running(stop):
                delivery.enqueue(failure(-1))
                await asyncio.to_thread(receiver.wait_for, 1)  # in flight, held
                for n in range(QUEUE + 50):
                    delivery.enqueue(failure(n))
                assert queued(metrics) == QUEUE  # the one held is not waiting
                assert counts(metrics) == {"dropped": 50, "failed": 0, "sent": 0}
                opened.set()
                deadline = time.monotonic() + 20
                while queued(metrics) or counts(metrics)["sent"] < QUEUE + 1:
                    assert time.monotonic() < deadline, (queued(metrics), counts(metrics))
                    await asyncio.sleep(0.01)
                stop.set()

        asyncio.run(main())
    assert counts(metrics) == {"dropped": 50, "failed": 0, "sent": QUEUE + 1}
    said = [r.__dict__["fields"] for r in caplog.records if r.getMessage() == DROPPED_LINE]
    assert said == [{"receiver": "hook", "dropped": 1}, {"receiver": "hook", "dropped": 49}]
    assert all(
        r.levelno == logging.WARNING for r in caplog.records if r.getMessage() == DROPPED_LINE
    )
