"""Reading a receiver's urlFile (or secretFile) is part of the attempt, under its deadline: a
file on a mount that no longer answers held that receiver's sender for as long as the mount
hung, every message behind it waiting. The read cannot be interrupted: it stays one daemon
thread, which the next attempts wait for (up to their own deadlines) rather than start another."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import pytest

from reconciler.sinks import notify_config, notify_delivery
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify_delivery import Delivery, Message
from tests.notify.test_notifier import config, counts

BOUND = 30.0  # seconds: generous, only to tell "at the deadline" from "for ever"


def test_a_url_file_that_hangs_is_given_up_at_each_attempts_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    notifications = config(tmp_path, "http://127.0.0.1:9/hook", kind="generic")  # read now
    hung, release = threading.Event(), threading.Event()
    readers: list[threading.Thread] = []

    def read_hung_mount(path: Path, limit: int) -> bytes:
        readers.append(threading.current_thread())
        hung.set()
        release.wait(BOUND + 10)
        return b"http://127.0.0.1:9/late\n"

    monkeypatch.setattr(notify_config, "read_secret_file", read_hung_mount)
    metrics = Metrics()
    delivery = Delivery(notifications, metrics=metrics, backoff=0.01, timeout=0.2)

    async def scenario() -> None:
        stop = asyncio.Event()
        async with delivery.running(stop):
            delivery.enqueue(Message("hook", "failed", {"event": "failed"}))
            deadline = time.monotonic() + BOUND
            while counts(metrics)["failed"] == 0:
                assert time.monotonic() < deadline, f"not failed in {BOUND} s"
                await asyncio.sleep(0.02)
            stop.set()

    try:
        asyncio.run(scenario())
    finally:
        release.set()
    assert hung.is_set()
    said = [
        (r.getMessage(), r.fields["error"])  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage().startswith("notification")
    ]
    assert said == [("notification not delivered; retrying", "urlFile not read within 0.2s")] * (
        notify_delivery.MAX_ATTEMPTS - 1
    ) + [("notification failed", "urlFile not read within 0.2s")]
    assert len(readers) == 1  # the later attempts waited for the read under way
    assert readers[0].daemon
