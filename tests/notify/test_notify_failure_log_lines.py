"""A receiver that refuses every message with a status that is not retried (404: a revoked
Slack webhook), or whose urlFile is broken, must not get a log line per message: the first
failure is said at once, then the failures since in one line at most once a minute (a line
that says the last one and how many, ``failed``), and what is left when the sender ends.
Every message is still counted in the metric. Real HTTP, a fake clock for the pace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.sinks import notify_delivery
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify_delivery import Delivery
from tests.notify.receiver import receiving
from tests.notify.test_notifier import config, counts
from tests.notify.test_notify_drop_log_lines import Clock, flood, lines


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.01)


def test_a_refusing_receiver_gets_a_failure_line_at_most_once_a_minute(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    clock, metrics = Clock(), Metrics()
    with receiving() as receiver:
        receiver.failures_left, receiver.fail_status = 10**6, 404
        delivery = Delivery(
            config(tmp_path, receiver.url, kind="generic"), metrics=metrics, clock=clock
        )

        def failed(count: int) -> Callable[[], bool]:
            return lambda: counts(metrics)["failed"] == count

        async def main() -> None:
            stop = asyncio.Event()
            async with delivery.running(stop):
                flood(delivery, 30)  # the first said at once, 29 held
                await until(failed(30))
                clock.now += notify_delivery.FAILURES_SAID_EVERY
                flood(delivery, 1)  # a minute later: the 29 are said as it comes; it is held
                await until(failed(31))
                flood(delivery, 5)  # held too: the 6 said when the sender ends
                await until(failed(36))
                stop.set()

        asyncio.run(main())
    said = lines(caplog, "notification failed")
    assert [line.get("failed", 1) for line in said] == [1, 29, 6]
    assert all(line["receiver"] == "hook" and line["status"] == 404 for line in said)
    assert counts(metrics) == {"dropped": 0, "failed": 36, "sent": 0}


def test_a_broken_url_file_gets_one_line_for_many_messages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    metrics = Metrics()
    delivery = Delivery(
        config(tmp_path, "http://127.0.0.1:9/x", kind="generic"), metrics=metrics, backoff=0.001
    )
    (tmp_path / "url").write_text("not a URL\n")

    async def main() -> None:
        stop = asyncio.Event()
        async with delivery.running(stop):
            flood(delivery, 40)
            await until(lambda: counts(metrics)["failed"] == 40)
            stop.set()

    asyncio.run(main())
    said = lines(caplog, "notification failed")
    assert [line.get("failed", 1) for line in said] == [1, 39]  # the first, then at the end
    assert said[0]["error"] == said[1]["error"]
    assert "not a URL" not in str(said)
