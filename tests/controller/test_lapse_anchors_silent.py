"""The read of the tasks' latest records after a lapse (``controller.lapse``) is waited for a
bounded time: a run store that takes bytes and never answers held the renewal loop's tick that
awaited it (no renewal meanwhile) and the stop, for as long as the store was silent. Unanswered,
the read counts as failed (runs held, then counted from memory after the renew deadline); it
goes on in its thread, and its answer serves the next look instead of a second read."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any, cast

from reconciler.controller.lapse import Lapse
from reconciler.store.base import RunStore
from tests.controller.test_cluster_lapse_anchors import _Dispatcher

WAIT = 10.0  # seconds: reached only by a test that fails
SLOT = datetime(2026, 12, 6, 12, tzinfo=UTC)


class _Silent:
    """A store whose ``last_slots`` answers only once ``answer`` is set."""

    def __init__(self) -> None:
        self.answer = threading.Event()
        self.asked = 0

    def last_slots(self, keys: list[str]) -> dict[str, datetime]:
        self.asked += 1
        self.answer.wait(3 * WAIT)  # longer than any wait of the test
        return dict.fromkeys(keys, SLOT)


def _silent_lapse() -> tuple[Lapse, _Silent, RunStore]:
    """A lapse whose looks wait 10 ms for a store that does not answer ``last_slots``."""
    silent = _Silent()
    lapse = Lapse(cast(Any, _Dispatcher()), lambda anchors: None, lambda: 0.0, 6.0, wait=0.01)
    return lapse, silent, cast(RunStore, silent)


def test_a_read_the_store_does_not_answer_holds_runs_and_is_not_asked_twice() -> None:
    lapse, silent, store = _silent_lapse()

    async def main() -> None:
        lapse.hand_back(["default/a"])
        try:
            first = asyncio.ensure_future(lapse.anchors(store))
            done, _ = await asyncio.wait({first}, timeout=WAIT)
            assert done, "the look waited for the store's answer"
            assert first.result() is None  # runs held
            assert await lapse.anchors(store) is None  # the same read, still unanswered
            assert silent.asked == 1
        finally:
            silent.answer.set()
        answered = await asyncio.wait_for(_answered(lapse, store), WAIT)
        assert answered == {"default/a": SLOT}
        assert silent.asked == 1  # its answer, not a second read

    asyncio.run(main())


async def _answered(lapse: Lapse, store: RunStore) -> Any:
    while (found := await lapse.anchors(store)) is None:
        await asyncio.sleep(0.01)
    return found


def test_a_new_lapse_reads_anew_but_never_beside_a_read_still_unanswered() -> None:
    """A second lapse while the first one's read is unanswered: no second read beside it (each
    would hold a thread of the pool source reads share, for as long as the store is silent),
    and once it is answered, that answer (from before the lapse) is not taken: a new read is."""
    lapse, silent, store = _silent_lapse()

    async def main() -> None:
        lapse.hand_back(["default/a"])
        try:
            assert await asyncio.wait_for(lapse.anchors(store), WAIT) is None
            lapse.hand_back(["default/a"])  # another lapse, the first read still unanswered
            assert await asyncio.wait_for(lapse.anchors(store), WAIT) is None
            assert await asyncio.wait_for(lapse.anchors(store), WAIT) is None
            assert silent.asked == 1, "a second read beside the one still unanswered"
        finally:
            silent.answer.set()
        answered = await asyncio.wait_for(_answered(lapse, store), WAIT)
        assert answered == {"default/a": SLOT}
        assert silent.asked == 2, "the answer of the read asked before the lapse was taken"

    asyncio.run(main())
