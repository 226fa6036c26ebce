"""A receiver's redirect to a ``Location`` httpx cannot parse (``http://h:abc/``: a port that is
no number; ``mailto:``) is a redirect as any other: a failed delivery with its status and the
redirect's hint, not retried. httpx builds the request it would follow even when it follows
none: the first was a ``RemoteProtocolError`` retried with no status, the second an
``InvalidURL`` logged at ERROR as a request that cannot be made. Real HTTP."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify_delivery import Delivery
from reconciler.sinks.notify_failures import REDIRECT_HINT
from tests.notify.receiver import receiving
from tests.notify.test_notifier import config, counts
from tests.notify.test_notify_drop_log_lines import flood, lines
from tests.notify.test_notify_failure_log_lines import until


@pytest.mark.parametrize(
    "location", ["http://h:abc/hooks/L0CATION-S3CRET", "mailto:ops@example.com?L0CATION-S3CRET"]
)
def test_a_redirect_httpx_cannot_follow_fails_with_its_status_and_hint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, location: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    metrics = Metrics()
    with receiving() as receiver:
        receiver.failures_left, receiver.fail_status = 10**6, 301
        receiver.fail_headers = {"Location": location}
        delivery = Delivery(config(tmp_path, receiver.url, kind="generic"), metrics=metrics)

        async def main() -> None:
            stop = asyncio.Event()
            async with delivery.running(stop):
                flood(delivery, 1)
                await until(lambda: counts(metrics)["failed"] == 1)
                stop.set()

        asyncio.run(main())
        assert len(receiver.received) == 1  # not retried, not followed
    assert "L0CATION" not in caplog.text
    failed = [r for r in caplog.records if r.getMessage() == "notification failed"]
    assert [r.levelno for r in failed] == [logging.WARNING]
    assert lines(caplog, "notification failed") == [
        {
            "receiver": "hook",
            "event": "everyFailure",
            "attempt": 1,
            "status": 301,
            "error": None,
            "hint": REDIRECT_HINT,
        }
    ]
