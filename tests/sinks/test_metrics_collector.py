"""What a ``/metrics`` scrape leaves for Python's cyclic garbage collector.

A scrape allocates enough to trigger young collections, and whatever it holds at those moments
is moved towards the oldest generation. Enough of that (a quarter of what the oldest
generation holds) sets off a full collection, which walks every long-lived object while
holding the GIL, so the event loop's thread waits too: at 10 000 tasks one scrape a second
meant a 100 ms full collection every second or two, and per-second tasks started up to that
much later. A scrape of the real scheduler's snapshot holds a few objects, not one per task.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from reconciler.core.plan import Operation, Step
from reconciler.core.runs import RunStatus
from reconciler.scheduling.apscheduler import ApsScheduler
from reconciler.sinks.metrics import Metrics
from tests.helpers import definition
from tests.sinks.test_metrics import run

TASKS = 2_000


@contextmanager
def frequent_collections() -> Iterator[Callable[[], int]]:
    """Collect the young generations every few allocations, never the oldest; yields
    the most objects found moved into the oldest generation at the end of a collection,
    beyond those there when the block began."""
    gc.collect()
    gc.freeze()  # what the test process holds stays out of the count
    usual = gc.get_threshold()
    peak, collections = 0, 0

    def watch(phase: str, info: dict[str, int]) -> None:
        nonlocal peak, collections
        if phase == "stop" and info["generation"] == 1:
            collections += 1
            peak = max(peak, len(gc.get_objects(2)))

    def held() -> int:
        # A collector that never collected the middle generation here measured nothing (one
        # unlike CPython 3.11-3.13's three generations): fail rather than pass.
        assert collections >= 10, f"{collections} collections of generation 1 seen"
        return peak

    gc.callbacks.append(watch)
    gc.set_threshold(10, 1, 1_000_000)
    try:
        yield held
    finally:
        gc.set_threshold(*usual)
        gc.callbacks.remove(watch)
        gc.unfreeze()


def test_a_scrape_holds_no_object_per_task_for_the_collector() -> None:
    definitions = [definition(f"t{i}", schedule="0 0 1 1 *") for i in range(TASKS)]

    async def main() -> tuple[int, int]:
        scheduler = ApsScheduler(lambda key, at: None)
        for d in definitions:
            scheduler.apply(Step(Operation.ADD, d.key, d, None))
        scheduler.start()
        try:
            metrics = Metrics(scheduler)
            for d in definitions[::2]:  # half the tasks have run, half never did
                run(metrics, d.key, RunStatus.SUCCEEDED)
            body, _ = metrics.render()
            with frequent_collections() as held:
                metrics.render("gzip")
            return held(), body.count(b"crontask_task_next_run_timestamp_seconds{")
        finally:
            scheduler.shutdown()

    held, scheduled = asyncio.run(main())
    assert scheduled == TASKS  # every task is in the scrape, with its next slot
    assert held < TASKS // 20, held
