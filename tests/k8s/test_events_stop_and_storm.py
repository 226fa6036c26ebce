"""Events a stop does not send, the one in its try included, counted once; Events dropped at
emit (the queue full) logged, once per REFUSAL_EVERY with how many were held back; a 429's
Retry-After waited for, up to a bound, as client-go's REST layer does."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.sinks.kubernetes_events import MAX_RETRY_AFTER
from reconciler.sinks.refusals import REFUSAL_EVERY, RefusalLog
from tests.helpers import wait_for
from tests.k8s.test_events_held import REF, Script, caught, failing, recorder_of, serve
from tests.k8s.test_events_refused import logged

__all__ = ["caught", "serve"]  # fixtures

NOT_SENT = "events not sent at stop"
FULL = "event not recorded: the queue is full"


@pytest.mark.parametrize(("step", "dropped", "created"), [("hold", 3, 0), ("wait", 2, 1)])
def test_a_stop_during_a_try_counts_the_event_in_it_once(
    serve: Any, caught: pytest.LogCaptureFixture, step: str, dropped: int, created: int
) -> None:
    script = Script(step, *["hold"] * 4)
    recorder = recorder_of(serve(script))
    recorder.request_timeout = (5, 30.0)  # the try outlasts the stop
    for n in range(3):
        recorder.emit(REF, failing(n))
    wait_for("the first try in flight", lambda: len(script.tried) == 1)
    recorder.stop(0.5)
    # Three not sent: the one in its try and the two behind it (on the old code, 2).
    assert recorder.dropped == 3
    assert [(m, f) for m, _, f in logged(caught)] == [(NOT_SENT, {"events": 3})]
    # The try ends, unanswered ("hold": the connection closed) or answered ("wait"): the
    # Event is counted once, not sent or created.
    script.go.set()
    script.done.set()
    thread = recorder._thread
    assert thread is not None
    wait_for("the worker ended", lambda: not thread.is_alive())
    assert (recorder.dropped, recorder.created, script.tried) == (dropped, created, [0])
    assert [m for m, _, _ in logged(caught)] == [NOT_SENT]


def test_events_dropped_with_the_queue_full_are_logged_once_per_period(
    serve: Any, caught: pytest.LogCaptureFixture
) -> None:
    script = Script("hold")
    recorder = recorder_of(serve(script), queue_size=2)
    now = [0.0]
    recorder._refusals = RefusalLog(clock=lambda: now[0])
    try:
        recorder.emit(REF, failing(0))
        wait_for("the first try in flight", lambda: len(script.tried) == 1)
        for n in range(1, 8):  # two queued behind it, five dropped
            recorder.emit(REF, failing(n))
        assert recorder.dropped == 5
        now[0] += REFUSAL_EVERY
        recorder.emit(REF, failing(8))
        assert recorder.dropped == 6
        lines = [(m, f) for m, _, f in logged(caught)]
        # On the old code, none.
        assert lines == [
            (FULL, {"queue_size": 2, "suppressed": 0}),
            (FULL, {"queue_size": 2, "suppressed": 4}),
        ]
    finally:
        script.done.set()
        recorder.stop()


@pytest.mark.parametrize(
    ("retry_after", "waited"),
    [("3600", MAX_RETRY_AFTER), ("7", 7.0), ("0", 0.01), (None, 0.01)],
)
def test_a_429_waits_as_its_retry_after_asks_up_to_a_bound(
    serve: Any, caught: pytest.LogCaptureFixture, retry_after: str | None, waited: float
) -> None:
    script = Script((429, retry_after) if retry_after is not None else 429)
    recorder = recorder_of(serve(script))  # retry_seconds 0.01
    try:
        recorder.emit(REF, failing(0))
        ((message, _, fields),) = wait_for("a line", lambda: logged(caught))
    finally:
        recorder.stop(0.0)  # in the wait: it ends it
    assert message == "event not sent: the API server answered 429; retrying"
    # On the old code, retry_seconds whatever the answer asked.
    assert fields["in_seconds"] == waited
