"""The CronTask watch and the Job watches stop in one wait. The CronTask source's watch waited
for its thread on its own (5 s) before the Job watches' shared wait (5 s more): an API server
that took the watches' requests and never answered held the stop 10 s, not 5. Now the source
only tells its informer to stop, and the Job watch, made with it (``stops_with``, as
``controller.kube.jobs`` makes it) and next on the stop path, waits for its thread with theirs:
``STOP_WAIT`` in all.

The real source, Job watch and kubernetes client, over HTTP, against the project's emulator,
which holds every GET unanswered once the watches are open (``Emulator.hold``), then cuts the
open watches, so that each informer is in a request that cannot be cut."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from reconciler.sources import kubernetes_watch
from reconciler.sources.kubernetes import KubernetesSource
from reconciler.sources.kubernetes_jobs import JobWatch
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator

pytestmark = pytest.mark.usefixtures("real_crd")

WAIT = 1.0  # STOP_WAIT here (5 s in use)
NAMESPACES = ["a", "b"]


def held_watches(emulator: Emulator, since: int) -> set[str]:
    """Which collections were read (watched again) since request ``since``: held, unanswered."""
    found = set()
    for verb, path in emulator.requests[since:]:
        if verb == "GET":
            found |= {"crontasks"} if "/crontasks" in path else set()
            found |= {ns for ns in NAMESPACES if f"/namespaces/{ns}/jobs" in path}
    return found


def test_the_crontask_watch_stops_in_the_job_watches_wait(
    emulator: Emulator, k8s_api_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kubernetes_watch, "STOP_WAIT", WAIT, raising=False)
    source = KubernetesSource(k8s_api_client, "default")
    jobs = JobWatch(k8s_api_client, NAMESPACES, stops_with=[source.informer])

    async def main() -> float:
        loop = asyncio.get_running_loop()
        stop, ready = asyncio.Event(), asyncio.Event()
        watching = asyncio.create_task(source.watch(lambda keys: None, ready.set, stop))
        assert await asyncio.to_thread(jobs.start, loop, 10)
        await asyncio.wait_for(ready.wait(), 20)
        assert source.informer.synced
        # Each informer's watch open first: one whose request had come but was not yet a
        # stream when the watches were cut went on, and never asked again.
        await asyncio.to_thread(emulator.wait_for_watches, 1 + len(NAMESPACES), None, 20)
        since = len(emulator.requests)
        emulator.hold("GET")
        emulator.cut_watches()  # each informer watches again: held, a request stop cannot cut
        await asyncio.to_thread(
            wait_for,
            "the watches held",
            lambda: held_watches(emulator, since) == {"crontasks", *NAMESPACES},
        )
        began = time.monotonic()
        stop.set()  # as crontask's stop: the source's watch first, then the Job watch
        await watching
        await asyncio.to_thread(jobs.stop)
        return time.monotonic() - began

    try:
        took = asyncio.run(main())
        stuck = source.informer._thread
        assert stuck is not None
        assert stuck.is_alive()  # it was waited for, not ended
    finally:
        emulator.release()
    assert WAIT * 0.9 <= took < 2 * WAIT, took  # one wait (not one the source's, one the Jobs')
    source.informer.stop(10.0)  # released: its request fails, and the thread ends
    assert not stuck.is_alive()
