"""Events while the API server is unreachable (its port refuses connections): one warning line
per namespace, without a traceback, with the error in a few words and how many were held back;
the Events kept and recorded once it is back, a bounded number of tries each (the one tried
held, those behind it untried meanwhile: see test_events_held). A failure of no
known kind (a bug) keeps its traceback, but is logged once per kind of error too."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from reconciler.core.run_events import EventSpec
from reconciler.core.status import ObjectRef
from reconciler.sinks.kubernetes_events import EventRecorder
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.gate import gated
from tests.k8s.test_events_refused import logged

REF = ObjectRef("default", "a", "uid-a", "1", 1)


def failing(n: int) -> EventSpec:
    return EventSpec("Warning", "RunFailed", f"exit code {n}")


def test_events_while_unreachable_are_one_warning_line_and_recorded_once_back(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crontask.sinks")
    with gated(emulator) as (gate, api):
        recorder = EventRecorder(api, qps=100.0)
        recorder.retry_seconds = 0.02
        recorder.start()
        try:
            gate.close()
            for n in range(5):
                recorder.emit(REF, failing(n))
            ((message, exc_info, fields),) = wait_for("a line", lambda: logged(caplog))
            assert (message, exc_info) == (
                "event not sent: no answer from the API server; retrying",
                None,
            )
            assert fields["error"].startswith("NewConnectionError: ")
            assert "Connection refused" in fields["error"]
            assert "\n" not in fields["error"]
            assert (fields["namespace"], fields["tries"], fields["suppressed"]) == ("default", 1, 0)
            # Nothing can be sent: a flush says so at once (a stop does not wait for it).
            assert not recorder.flush(60.0)
            # The first one is tried again and again; those behind it wait, untried.
            wait_for("the first Event tried thrice", lambda: recorder.retried >= 3)
            assert recorder.created == 0

            gate.open()
            wait_for("the Events recorded", lambda: recorder.created == 5)
            assert recorder.flush(5.0)
        finally:
            recorder.stop()
    assert len(logged(caplog)) == 1
    assert (recorder.dropped, recorder.refused) == (0, 0)
    recorded = [e for e in emulator.objects("events") if e["involvedObject"]["uid"] == "uid-a"]
    assert sorted(e["message"] for e in recorded) == [f"exit code {n}" for n in range(5)]


def test_an_event_is_tried_a_bounded_number_of_times(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crontask.sinks")
    with gated(emulator) as (gate, api):
        recorder = EventRecorder(api, qps=100.0)
        recorder.retries, recorder.retry_seconds = 2, 0.01
        recorder.start()
        try:
            gate.close()
            recorder.emit(REF, failing(1))
            wait_for("the Event given up", lambda: recorder.dropped == 1)
            gate.open()
            recorder.emit(REF, failing(2))
            wait_for("the next Event recorded", lambda: recorder.created == 1)
        finally:
            recorder.stop()
    assert recorder.retried == 2
    lines = [(message, fields["tries"]) for message, _, fields in logged(caplog)]
    assert lines == [
        ("event not sent: no answer from the API server; retrying", 1),
        ("event not recorded: no answer from the API server", 3),
    ]
    recorded = [e for e in emulator.objects("events") if e["involvedObject"]["uid"] == "uid-a"]
    assert [e["message"] for e in recorded] == ["exit code 2"]


def test_events_queued_at_a_stop_while_unreachable_are_counted_not_sent(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crontask.sinks")
    with gated(emulator) as (gate, api):
        recorder = EventRecorder(api, qps=100.0)  # 10 s between tries: the stop comes first
        recorder.start()
        gate.close()
        for n in range(3):
            recorder.emit(REF, failing(n))
        wait_for("a line", lambda: logged(caplog))
        recorder.stop(timeout=60.0)
    stopped = [f for m, _, f in logged(caplog) if m == "events not sent at stop"]
    assert stopped == [{"events": 3}]
    assert recorder.dropped == 3


def test_a_failure_of_no_known_kind_keeps_its_traceback_once_per_kind(
    k8s_api_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crontask.sinks")
    # No namespace: the client refuses to build the request (a bug of ours, were it to happen).
    ref = ObjectRef(None, "a", "uid-a", "1", 1)  # type: ignore[arg-type]
    recorder = EventRecorder(k8s_api_client, qps=100.0)
    recorder.start()
    try:
        for n in range(5):
            recorder.emit(ref, failing(n))
        assert recorder.flush(5.0)
    finally:
        recorder.stop()
    ((message, exc_info, fields),) = logged(caplog)
    assert message == "event not recorded"
    assert exc_info is not None
    assert fields == {"suppressed": 0}
    assert (recorder.dropped, recorder.created) == (5, 0)
