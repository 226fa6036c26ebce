"""At shutdown each queued message is tried once, with no backoff: once one to a receiver has
failed, the rest of that receiver's queue is dropped (counted, and said in the shutdown's one
line), not POSTed back to back to a receiver answering 5xx. Another receiver's queue is
delivered meanwhile. Real HTTP."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify_config import parse
from reconciler.sinks.notify_delivery import Delivery, Message
from tests.notify.receiver import receiving
from tests.notify.test_notify_drop_log_lines import lines

QUEUED = 100


def test_a_receiver_failing_at_shutdown_gets_one_request_not_one_per_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    metrics = Metrics()
    with receiving() as failing, receiving() as working:
        failing.failures_left, failing.fail_status = 10**6, 500
        text = (
            "receivers:\n"
            f"  - {{name: failing, type: generic, url: '{failing.url}'}}\n"
            f"  - {{name: working, type: generic, url: '{working.url}'}}\n"
            "routes:\n  - {receiver: failing, events: [failed]}\n"
        )
        delivery = Delivery(parse(text, "n.yaml", tmp_path), metrics=metrics)
        for n in range(QUEUED):
            for name in ("failing", "working"):
                delivery.enqueue(Message(name, "failed", {"n": n}))

        async def main() -> None:
            stop = asyncio.Event()
            stop.set()  # stopping: what is queued is tried once
            async with delivery.running(stop):
                pass

        asyncio.run(main())
        assert len(working.wait_for(QUEUED)) == QUEUED
        assert len(failing.received) == 1
    [summary] = [s for s in lines(caplog, "notifications not delivered before shutdown")]
    assert summary == {"receiver": "failing", "failed": 1, "dropped": QUEUED - 1}
