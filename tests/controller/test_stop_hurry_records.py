"""A second stop signal (Ctrl-C again) cuts the wait for the run records kept for later (the
store unavailable), not only the runs' graces: those still kept are lost, each said, as when
the wait runs out. The records a store that answers can take still go. The in-memory store,
behind an outage switch; the real dispatcher and recorder."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunRecord, RunStatus
from tests.controller.test_recorder import record
from tests.controller.test_recorder_lost_and_later import FullStore, fields
from tests.helpers import local_actions

GRACE = 600.0  # the records' wait, far longer than the test may take
BOUND = 20.0
WAITING = "waiting for the run store to take the records kept for later; a second stop signal ends the wait"  # noqa: E501
LOST = "run records lost at shutdown: the store stayed unavailable"


class Outage:
    """The store down, and three run records kept for it."""

    def __init__(self) -> None:
        self.store = FullStore()
        self.store.down = True
        self.kept: list[RunRecord] = [record(minute, RunStatus.SUCCEEDED) for minute in range(3)]

    def dispatcher(self, backoff: float | None = None) -> Dispatcher:
        """A dispatcher whose recorder keeps the records, and tries the store again after 10
        ms, then up to 50 ms; or, with ``backoff``, after that many seconds each time."""
        recorder = Recorder(self.store, retry_initial=backoff or 0.01, retry_max=backoff or 0.05)
        d = Dispatcher(self.store, owner="host:1:abc", actions=local_actions(), recorder=recorder)
        d.recorder.later(self.kept)
        return d

    async def tried(self, backoff: float | None = None) -> Dispatcher:
        """The same, once its flush has tried the store and failed: it waits out its backoff."""
        d = self.dispatcher(backoff)
        assert await d.recorder.flush(0.05) is False
        return d

    def all_written(self, d: Dispatcher, caplog: pytest.LogCaptureFixture) -> None:
        assert d.recorder.lost == 0, caplog.text
        assert [self.store.get(r.id) for r in self.kept] == self.kept
        assert not fields(caplog, LOST)


def stopped(
    caplog: pytest.LogCaptureFixture, scenario: Callable[[], Coroutine[Any, Any, Dispatcher]]
) -> Dispatcher:
    """``scenario`` run to its end on a loop of its own, its INFO lines captured."""
    with caplog.at_level("INFO"):
        return asyncio.run(scenario())


async def said(caplog: pytest.LogCaptureFixture, message: str) -> None:
    while not fields(caplog, message):
        await asyncio.sleep(0.01)


def test_a_second_signal_during_the_records_wait_ends_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = Outage()
    took = 0.0

    async def scenario() -> Dispatcher:
        nonlocal took
        d = outage.dispatcher()
        hurry = asyncio.Event()
        shutdown = asyncio.ensure_future(d.shutdown(GRACE, hurry))
        await asyncio.wait_for(said(caplog, WAITING), BOUND)
        began = time.monotonic()
        hurry.set()  # a second Ctrl-C
        await asyncio.wait_for(shutdown, BOUND)
        took = time.monotonic() - began
        return d

    d = stopped(caplog, scenario)
    assert fields(caplog, WAITING) == [{"records": 3, "seconds": GRACE}]
    assert took < BOUND
    assert d.recorder.lost == 3
    assert fields(caplog, LOST) == [{"lost": 3}]
    lost = [f["run"] for f in fields(caplog, "run record lost at shutdown")]
    assert lost == [r.id for r in outage.kept]
    # Nothing left behind on the loop: no task destroyed pending, no exception unretrieved.
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text


def test_a_hurried_stop_still_writes_what_the_store_takes_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = Outage()

    async def scenario() -> Dispatcher:
        d = await outage.tried()  # the flush is on, and fails
        outage.store.down = False  # the store is back: the flush's next try (50 ms) writes them
        hurry = asyncio.Event()
        hurry.set()  # Ctrl-C twice before the stop reached the records
        await asyncio.wait_for(d.shutdown(GRACE, hurry), BOUND)
        return d

    d = stopped(caplog, scenario)
    assert fields(caplog, WAITING) == [{"records": 3, "seconds": 1.0}]
    outage.all_written(d, caplog)


def test_a_hurried_stop_asks_a_store_back_during_a_long_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The default backoff grows to 30 s: a store back during it was not asked again within
    # the hurried second, and every record was lost to a store that answered.
    outage = Outage()

    async def scenario() -> Dispatcher:
        d = await outage.tried(backoff=30.0)  # failed, and sleeps 30 s
        outage.store.down = False
        hurry = asyncio.Event()
        hurry.set()
        await asyncio.wait_for(d.shutdown(GRACE, hurry), BOUND)
        return d

    outage.all_written(stopped(caplog, scenario), caplog)


@pytest.mark.parametrize("back", ["before the stop", "during the wait"])
def test_a_stop_asks_a_store_back_at_once_and_then_every_second(
    caplog: pytest.LogCaptureFixture, back: str
) -> None:
    # One stop signal (no hurry): a store back before the records' wait, or during it, was not
    # asked again before the backoff (up to 30 s) ran out, past a 5 s grace: all lost, exit 1.
    outage = Outage()

    async def scenario() -> Dispatcher:
        d = await outage.tried(backoff=30.0)  # failed, and sleeps 30 s
        if back == "before the stop":
            outage.store.down = False
        else:
            asyncio.get_running_loop().call_later(0.5, setattr, outage.store, "down", False)
        await asyncio.wait_for(d.shutdown(5.0, asyncio.Event()), BOUND)
        return d

    outage.all_written(stopped(caplog, scenario), caplog)
