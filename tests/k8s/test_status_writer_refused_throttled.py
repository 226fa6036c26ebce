"""Status writes the API server refuses (``403``: the ServiceAccount lacks ``crontasks/status:
patch``) are logged as refused Events are: one warning per kind of refusal (verb, namespace,
status) every ``REFUSAL_EVERY`` seconds, with how many were not logged since (``suppressed``),
not one line per write (an every-second task, or many tasks, would write one a second each)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from reconciler.sinks.kubernetes import StatusWriter
from tests.k8s.emulator import Emulator
from tests.k8s.test_status_writer_reread_failed import create, setting

pytestmark = pytest.mark.usefixtures("real_crd")

MISSING = "crontasks/status: patch in namespace default"


def refused(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [
        getattr(r, "fields", None)
        for r in caplog.records
        if r.name == "crontask.sinks" and r.message == "status write refused"
    ]


def refuse_nine(emulator: Emulator, writer: StatusWriter) -> None:
    """Three objects written three times, every write refused."""
    refs = [create(emulator, name) for name in ("a", "b", "c")]
    emulator.inject_errors(status=403, times=9)
    for n in range(3):
        for ref in refs:
            writer.submit(ref, setting(activeCount=n + 1))
        assert writer.flush(5.0)


def test_refused_status_writes_are_one_warning_not_one_a_write(
    emulator: Emulator, k8s_api_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    writer = StatusWriter(k8s_api_client, workers=1, backoff=0.02, max_backoff=0.1)
    writer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.sinks"):
            refuse_nine(emulator, writer)
    finally:
        writer.stop(timeout=2.0)
    assert refused(caplog) == [
        {
            "task": "default/a",
            "status": 403,
            "reason": "Forbidden",
            "missing": MISSING,
            "suppressed": 0,
        }
    ]
    assert (writer.failures, writer.writes) == (9, 0)


def test_the_next_warning_of_a_kind_comes_after_ten_minutes_with_the_count(
    emulator: Emulator, k8s_api_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from reconciler.sinks.refusals import REFUSAL_EVERY, RefusalLog

    writer = StatusWriter(k8s_api_client, workers=1, backoff=0.02, max_backoff=0.1)
    now = [1000.0]
    writer._refusals = RefusalLog(clock=lambda: now[0])  # a clock the test moves
    writer.start()
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.sinks"):
            refuse_nine(emulator, writer)
            now[0] += REFUSAL_EVERY - 1
            emulator.inject_errors(status=403, times=1)
            writer.submit(create(emulator, "d"), setting(activeCount=1))
            assert writer.flush(5.0)
            assert len(refused(caplog)) == 1  # not yet ten minutes
            now[0] += 1
            emulator.inject_errors(status=403, times=1)
            writer.submit(create(emulator, "e"), setting(activeCount=1))
            assert writer.flush(5.0)
    finally:
        writer.stop(timeout=2.0)
    assert refused(caplog)[1:] == [
        {
            "task": "default/e",
            "status": 403,
            "reason": "Forbidden",
            "missing": MISSING,
            "suppressed": 9,
        }
    ]
