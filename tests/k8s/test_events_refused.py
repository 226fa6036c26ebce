"""Events the API server refuses (``403``: the ServiceAccount lacks ``events: create`` or
``patch``) are not recorded, and said in one warning line per kind of refusal, without a
traceback, naming the rule that is missing; not one traceback per Event."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from reconciler.core.run_events import EventSpec
from reconciler.core.status import ObjectRef
from reconciler.sinks.kubernetes_events import EventRecorder
from tests.k8s.emulator import Emulator


def logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, Any, Any]]:
    return [
        (r.message, r.exc_info, getattr(r, "fields", None))
        for r in caplog.records
        if r.name == "crontask.sinks"
    ]


def test_refused_events_are_one_warning_line_naming_the_missing_rule(
    emulator: Emulator, k8s_api_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = EventRecorder(k8s_api_client, qps=100.0)
    recorder.start()
    ref = ObjectRef("default", "a", "uid-a", "1", 1)
    try:
        with caplog.at_level(logging.WARNING, logger="crontask.sinks"):
            emulator.inject_errors(status=403, times=5)
            for n in range(5):
                recorder.emit(ref, EventSpec("Warning", "RunFailed", f"exit code {n}"))
            assert recorder.flush(5.0)
            assert logged(caplog) == [
                (
                    "event not recorded",
                    None,
                    {
                        "status": 403,
                        "reason": "Forbidden",
                        "missing": "events: create in namespace default",
                        "suppressed": 0,
                    },
                )
            ]
            assert (recorder.refused, recorder.created) == (5, 0)

            # Allowed again: recorded. Then the repeat's count may not be patched.
            recorder.emit(ref, EventSpec("Warning", "RunFailed", "exit code 9"))
            assert recorder.flush(5.0)
            assert recorder.created == 1
            emulator.inject_errors(status=403, times=3)
            for _ in range(3):
                recorder.emit(ref, EventSpec("Warning", "RunFailed", "exit code 9"))
            assert recorder.flush(5.0)
    finally:
        recorder.stop()
    assert logged(caplog)[1:] == [
        (
            "event not recorded",
            None,
            {
                "status": 403,
                "reason": "Forbidden",
                "missing": "events: patch in namespace default",
                "suppressed": 0,
            },
        )
    ]
    assert recorder.refused == 8
    assert recorder.patched == 0
