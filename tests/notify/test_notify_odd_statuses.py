"""Statuses a receiver should not answer with. 600 to 999 (no status HTTP defines) were retried
as a 5xx, and said with no word of what they are; 300 and 304 (which move nothing) got the
redirect's hint "update the receiver's URL". A status above 599 now fails at once with a
hint of its own, and only the redirects (301, 302, 303, 307, 308) get theirs. Real HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sinks.notify_failures import NO_HTTP_STATUS_HINT
from tests.notify.test_notify_redirect_hint import failure_lines


@pytest.mark.parametrize("status", [600, 999])
def test_a_status_outside_http_s_fails_at_once_and_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    said = failure_lines(tmp_path, caplog, status)  # and the receiver got the message once
    assert said == [
        {
            "receiver": "hook",
            "event": "everyFailure",
            "attempt": 1,
            "status": status,
            "error": None,
            "hint": NO_HTTP_STATUS_HINT,
        }
    ]


@pytest.mark.parametrize("status", [300, 304])
def test_a_3xx_that_moves_nothing_has_no_redirect_hint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    said = failure_lines(tmp_path, caplog, status)
    assert [line["status"] for line in said] == [status]
    assert "hint" not in said[0]
