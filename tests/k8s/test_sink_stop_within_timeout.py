"""At a stop, the Kubernetes status writer and the Event recorder take no more than the
``timeout`` given to ``stop`` (the stop budget counts it, not more), even while the API server
holds their requests: the joins of their threads share that one deadline with the flush. They
took it and then 1 s more per thread joined (the status writer: 4), and the recorder, its
queue full, waited on a held request for room for its stop mark (up to the request's 30 s).

Against the project's Kubernetes emulator, which holds the requests (``Emulator.hold``): a
thread in such a request cannot end before it is released, as with a hung API server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from reconciler.core.run_events import EventSpec
from reconciler.core.status import ObjectRef
from reconciler.sinks.kubernetes import StatusWriter
from reconciler.sinks.kubernetes_events import EventRecorder
from tests.k8s.emulator import Emulator
from tests.k8s.test_status_no_subresource import crd
from tests.k8s.test_status_writer_reread_failed import create, setting

TIMEOUT = 1.0
SLACK = 1.5  # generous: the bound is what is under test, and the machine may be loaded


def held(emulator: Emulator, method: str, count: int) -> None:
    """Wait (with a deadline) until ``count`` ``method`` requests reached the emulator."""
    deadline = time.monotonic() + 10
    while sum(1 for m, _ in list(emulator.requests) if m == method) < count:
        assert time.monotonic() < deadline, f"{count} {method} requests not seen in time"
        time.sleep(0.01)


def ended(threads: list[threading.Thread]) -> None:
    """Wait until ``threads``, released, have ended: a request they were in then fails, and
    its log line would otherwise land in a later test's records."""
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive(), thread


def timed_stop(stop: Callable[[], None]) -> float | None:
    """How long ``stop`` took; None if it had not returned by TIMEOUT + SLACK (it is left to
    end once the emulator releases its requests: the test does not hang on it)."""
    took: list[float] = []

    def run() -> None:
        began = time.monotonic()
        stop()
        took.append(time.monotonic() - began)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TIMEOUT + SLACK)
    return took[0] if took else None


def test_the_status_writer_stops_within_its_timeout_while_its_writes_are_held(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    emulator.create_crd(crd(status_subresource=True))
    refs = [create(emulator, name) for name in "abcd"]
    writer = StatusWriter(k8s_api_client, backoff=0.02, max_backoff=0.1)  # 4 workers, as in use
    writer.start()
    emulator.hold("PATCH")
    try:
        for ref in refs:
            writer.submit(ref, setting(activeCount=1))
        held(emulator, "PATCH", len(refs))  # each worker in a request that is not answered
        took = timed_stop(lambda: writer.stop(timeout=TIMEOUT))
    finally:
        emulator.release()
        ended(writer._threads)
    assert took is not None, "StatusWriter.stop did not return in time"
    assert TIMEOUT * 0.9 <= took < TIMEOUT + SLACK, took  # it waited for the flush, no more


def test_the_event_recorder_stops_within_its_timeout_while_its_queue_is_full_and_held(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    recorder = EventRecorder(k8s_api_client, qps=100.0, queue_size=2)
    recorder.start()
    emulator.hold("POST", r"^/api/v1/namespaces/default/events")
    try:
        recorder.emit(ObjectRef("default", "a", "uid-a", "1", 1), EventSpec("Normal", "R", "0"))
        held(emulator, "POST", 1)  # the thread in a request that is not answered
        for name in "bc":  # and the queue full behind it
            recorder.emit(
                ObjectRef("default", name, f"uid-{name}", "1", 1), EventSpec("Normal", "R", "1")
            )
        assert recorder.dropped == 0
        took = timed_stop(lambda: recorder.stop(timeout=TIMEOUT))
    finally:
        emulator.release()
        ended([recorder._thread] if recorder._thread is not None else [])
    assert took is not None, "EventRecorder.stop did not return in time"
    assert TIMEOUT * 0.9 <= took < TIMEOUT + SLACK, took
    assert recorder.dropped == 3  # the held one and the two behind it: counted once, not sent
