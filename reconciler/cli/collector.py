"""How `crontask run` uses Python's cyclic garbage collector while it starts.

Start-up builds what lives as long as the process: the imports, then every task's
definition, schedule and job. The collector's generations exist to find garbage among young
objects; walking that long-lived state finds none, and under the default thresholds it is
walked again and again while the first pass builds it.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator

# Allocations between two collections of the youngest generation while long-lived state is
# built. The first pass builds every task's definition, schedule and job; under the default
# threshold (700) each full collection walks all that was built so far, again and again:
# 0.6-0.9 s of a 3.5 s start-up at 10 000 tasks, 4-5 s of `crontask validate` at 100 000.
# Young cycles are still collected, every so many allocations, so garbage stays bounded.
_BUILDING_THRESHOLD = 100_000


@contextlib.contextmanager
def rare_collections() -> Iterator[None]:
    """Collect rarely while building what lives on (`validate`, `plan` and `next` loading a
    folder); the usual thresholds come back however the block ends."""
    usual = gc.get_threshold()
    gc.set_threshold(_BUILDING_THRESHOLD, *usual[1:])
    try:
        yield
    finally:
        gc.set_threshold(*usual)


@contextlib.contextmanager
def start_up_collector() -> Iterator[Callable[[], None]]:
    """Freeze what the imports built and collect rarely until the first pass has applied; the
    function yielded, called once crontask has started, freezes what start-up built and
    returns to the usual thresholds, so that later collections never walk the long-lived
    state (at 10 000 tasks that walk showed as pauses in the middle of a pass)."""
    gc.collect()  # the imports' garbage (some 50 ms), so that it is freed, not frozen
    gc.freeze()
    usual = gc.get_threshold()

    def started() -> None:
        # No collection first: it would walk everything start-up built (0.2 s at 10 000
        # tasks) in the event loop's time, and start-up leaves no garbage in cycles (none
        # found there at 10 000 tasks; tests/sources/test_documents.py keeps the reader so).
        gc.freeze()
        gc.set_threshold(*usual)

    with rare_collections():
        yield started
