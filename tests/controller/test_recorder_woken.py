"""Records kept in an outage go as soon as the store takes a write again, not after the flush
loop's backoff: it grew to 30 s, finished runs showed ``running`` meanwhile (to the other
replicas, to ``crontask runs``), and a kill in that window lost them, although the claims of
new runs were written. A write ends a backoff once every ``CUT_EVERY`` at most: a store that
takes claims and still not the records waiting is not tried once for each claim. The in-memory
store, its writes failing while ``down``; a backoff far longer than the test, so only a claim
(or ``retry_now``) can end it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

import pytest

from reconciler.controller import recorder as recorder_module
from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.store.base import StoreUnavailable
from tests.controller.test_recorder import record
from tests.controller.test_recorder_lost_and_later import FullStore

BACKOFF = 600.0  # the flush loop's every backoff: longer than the test may take
BOUND = 20.0


class CountedStore(FullStore):
    """``FullStore``, counting the writes of the records kept (``save_many``); ``saves_down``
    refuses those alone, as a full disk that still has room for a claim's small row."""

    def __init__(self) -> None:
        super().__init__()
        self.saves_down = False
        self.saves_tried = 0
        self._lock = threading.Lock()

    def save_many(self, records: Sequence[RunRecord]) -> list[RunRecord]:
        refused = self.saves_down  # decided before it is counted: a test that waits for the
        with self._lock:  # count and then lets writes go does not change this try's answer
            self.saves_tried += 1
        if refused:
            raise StoreUnavailable("database or disk is full")
        return super().save_many(records)

    def tried(self, times: int) -> Callable[[], bool]:
        """Whether the records kept were tried ``times`` times yet."""
        return lambda: self.saves_tried >= times


async def until(what: str, condition: Callable[[], bool]) -> None:
    """Poll ``condition`` on the loop until it holds; fail with ``what`` after ``BOUND``."""
    deadline = asyncio.get_running_loop().time() + BOUND
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def kept_and_tried(store: CountedStore) -> Recorder:
    """A recorder holding a run's end, once its flush tried the store and failed."""
    recorder = Recorder(store, retry_initial=BACKOFF, retry_max=BACKOFF)
    store.down = True
    recorder.later([record(0, RunStatus.SUCCEEDED)])  # kept, no write tried: the flush's first
    await until("the kept record tried", store.tried(1))
    return recorder


def test_a_claim_written_after_an_outage_sends_the_records_waiting_at_once() -> None:
    store = CountedStore()

    async def main() -> None:
        recorder = await kept_and_tried(store)
        store.down = False
        assert await recorder.claim(record(1)) is True
        # Not after the backoff (600 s): at once.
        assert await recorder.flush(BOUND) is True
        await recorder.close(0)

    asyncio.run(main())
    assert store.get(record(0).id) == record(0, RunStatus.SUCCEEDED)


def test_a_skip_written_after_an_outage_sends_the_records_waiting_at_once() -> None:
    store = CountedStore()

    async def main() -> None:
        recorder = await kept_and_tried(store)
        store.down = False
        assert await recorder.add(record(1, RunStatus.SKIPPED)) is True
        assert await recorder.flush(BOUND) is True
        await recorder.close(0)

    asyncio.run(main())
    assert store.get(record(0).id) == record(0, RunStatus.SUCCEEDED)


def test_claims_that_keep_going_through_end_a_backoff_once_in_cut_every(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first claim brings a try of the records refused; the claims after it, within
    ``CUT_EVERY`` (made longer than the test), bring none (one each before: 308 tries in 10 s
    at ten claims a second)."""
    monkeypatch.setattr(recorder_module, "CUT_EVERY", BACKOFF)
    store = CountedStore()

    async def main() -> None:
        recorder = await kept_and_tried(store)
        store.down, store.saves_down = False, True  # claims go, the kept record does not
        assert await recorder.claim(record(1)) is True
        await until("the kept record tried again", store.tried(2))
        for n in range(2, 32):
            assert await recorder.claim(record(n)) is True
            # The flush loop's turn, were it woken.
            assert await recorder.flush(0.01) is False
        assert store.saves_tried == 2  # the backoff (600 s) holds
        assert recorder.pending == 1
        store.saves_down = False
        recorder.retry_now()
        assert await recorder.flush(BOUND) is True
        await recorder.close(0)

    asyncio.run(main())
    assert store.get(record(0).id) == record(0, RunStatus.SUCCEEDED)


def test_a_store_back_after_a_claim_s_try_failed_is_tried_at_the_next_claim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A claim's try of the records fails (a row still locked); then the store takes them: a
    later claim ends the backoff again (``CUT_EVERY`` after the first), not the backoff's 600 s
    (a flag that held claims off until the loop's own write went stalled them up to 30 s)."""
    monkeypatch.setattr(recorder_module, "CUT_EVERY", 0.05)
    store = CountedStore()

    async def main() -> None:
        recorder = await kept_and_tried(store)
        store.down, store.saves_down = False, True
        assert await recorder.claim(record(1)) is True
        await until("the kept record tried again", store.tried(2))
        store.saves_down = False  # the store takes the records again
        assert await recorder.claim(record(2)) is True
        assert await recorder.flush(BOUND) is True
        await recorder.close(0)

    asyncio.run(main())
    assert store.get(record(0).id) == record(0, RunStatus.SUCCEEDED)
