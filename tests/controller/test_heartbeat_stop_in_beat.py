"""A stop asked while a beat's sweep is still in its thread, with a store in good health: the
beat is given ``FORGET_WAIT`` to end, so that what its sweep took is told. It was abandoned at
once (so that a store that never answers would not hold the stop): the sweep still took the run
from the untold, and nobody told of its crash."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from reconciler.controller.heartbeat import Heartbeat
from reconciler.controller.instance import instance_id
from reconciler.core.runs import RunRecord, run_id
from tests.controller.test_heartbeat import marked_untold
from tests.controller.test_recover_identity import T0


def test_a_sweep_in_flight_at_the_stop_still_tells_what_it_took() -> None:
    store = marked_untold()
    declaring = False
    told: list[RunRecord] = []
    in_sweep, release = threading.Event(), threading.Event()

    async def call(fn: Callable[..., Any], *args: Any) -> Any:
        def work() -> Any:
            if getattr(fn, "__name__", "") == "sweep" and declaring:
                in_sweep.set()
                assert release.wait(10)
            return fn(*args)

        return await asyncio.to_thread(work)

    beat = Heartbeat(
        store,
        instance_id(),
        call=call,
        interval=0.01,
        declares=lambda key: declaring,
        declaring=lambda: declaring,
        on_interrupted=told.extend,
        clock=lambda: T0 + timedelta(seconds=400),
    )

    async def main() -> None:
        nonlocal declaring
        stop, ready = asyncio.Event(), asyncio.Event()
        running = asyncio.create_task(beat.run(ready.set, stop))
        await asyncio.wait_for(ready.wait(), 10)
        declaring = True  # the first pass said which tasks are this crontask's
        assert await asyncio.to_thread(in_sweep.wait, 10)
        stop.set()  # while the sweep that takes the run is in its thread
        release.set()
        await asyncio.wait_for(running, 10)

    asyncio.run(main())
    assert [r.id for r in told] == [run_id("team-b/theirs", T0)]
