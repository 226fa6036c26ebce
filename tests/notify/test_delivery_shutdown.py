"""At shutdown the senders deliver what is queued for ``SHUTDOWN_SECONDS``, then drop it,
counted and logged: also what the stopping notifier enqueues after that (its last records are
considered after ``stop``, reading the store), never lost silently."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from reconciler.sinks import notify_delivery
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_delivery import Message
from tests.notify.test_notifier import config, counts


def test_what_is_enqueued_after_the_deadline_is_dropped_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify_delivery, "SHUTDOWN_SECONDS", 0.2)
    delivered: list[bytes] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.3)  # longer than the shutdown's allowance
        delivered.append(request.content)
        return httpx.Response(200)

    metrics = Metrics()
    notifier = Notifier(
        config(tmp_path, "http://127.0.0.1:9/x"),
        metrics=metrics,
        transport=httpx.MockTransport(slow),
    )
    delivery = notifier.delivery

    async def main() -> None:
        stop = asyncio.Event()
        async with delivery.running(stop):
            stop.set()
            for n in range(3):
                delivery.enqueue(Message("hook", "failed", {"n": n}))
            while counts(metrics).get("dropped", 0) == 0:  # the deadline passed
                await asyncio.sleep(0.01)
            delivery.enqueue(Message("hook", "failed", {"n": 3}))
            await asyncio.sleep(0)  # the sender looks at it
        assert not delivery.queues["hook"]

    asyncio.run(main())
    found = counts(metrics)
    assert found.get("sent", 0) == len(delivered)
    assert found.get("sent", 0) + found.get("dropped", 0) == 4
