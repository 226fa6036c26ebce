"""A receiver that answers with a redirect (a webhook moved: ``307`` with a ``Location``) is not
followed: the message could go, signed, wherever the answer says. Its failure line says what to
do (``hint``), and never the ``Location``, which may carry a token. Another refusal has no
such hint. Real HTTP."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify_delivery import Delivery
from tests.notify.receiver import receiving
from tests.notify.test_notifier import config, counts
from tests.notify.test_notify_drop_log_lines import flood, lines
from tests.notify.test_notify_failure_log_lines import until

HINT = "redirects are not followed: update the receiver's URL"
LOCATION = "https://moved.example/hooks/T0?token=L0CATION-S3CRET"


def failure_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int
) -> list[dict[str, object]]:
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    metrics = Metrics()
    with receiving() as receiver:
        receiver.failures_left, receiver.fail_status = 10**6, status
        receiver.fail_headers = {"Location": LOCATION}
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
    assert all("L0CATION" not in str(r.__dict__.get("fields")) for r in caplog.records)
    return lines(caplog, "notification failed")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_said_with_what_to_do_and_never_where_it_leads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    said = failure_lines(tmp_path, caplog, status)
    assert said == [
        {
            "receiver": "hook",
            "event": "everyFailure",
            "attempt": 1,
            "status": status,
            "error": None,
            "hint": HINT,
        }
    ]


def test_another_refusal_has_no_such_hint(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    said = failure_lines(tmp_path, caplog, 404)
    assert [line["status"] for line in said] == [404]
    assert "hint" not in said[0]
