"""A second stop signal (Ctrl-C again) cuts the wait for the run records kept for later (the
store unavailable), not only the runs' graces: those still kept are lost, each said, as when
the wait runs out. The records a store that answers can take still go. The in-memory store,
behind an outage switch; the real dispatcher and recorder."""

from __future__ import annotations

import asyncio
import time

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunStatus
from tests.controller.test_recorder import record
from tests.controller.test_recorder_lost_and_later import FullStore, fields
from tests.helpers import local_actions

GRACE = 600.0  # the records' wait, far longer than the test may take
BOUND = 20.0
WAITING = "waiting for the run store to take the records kept for later; a second stop signal ends the wait"  # noqa: E501
LOST = "run records lost at shutdown: the store stayed unavailable"


def dispatcher(store: FullStore) -> Dispatcher:
    recorder = Recorder(store, retry_initial=0.01, retry_max=0.05)
    return Dispatcher(store, owner="host:1:abc", actions=local_actions(), recorder=recorder)


async def said(caplog: pytest.LogCaptureFixture, message: str) -> None:
    while not fields(caplog, message):
        await asyncio.sleep(0.01)


def test_a_second_signal_during_the_records_wait_ends_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FullStore()
    store.down = True
    kept = [record(minute, RunStatus.SUCCEEDED) for minute in range(3)]
    took = 0.0

    async def scenario() -> Dispatcher:
        nonlocal took
        d = dispatcher(store)
        d.recorder.later(kept)
        hurry = asyncio.Event()
        shutdown = asyncio.ensure_future(d.shutdown(GRACE, hurry))
        await asyncio.wait_for(said(caplog, WAITING), BOUND)
        began = time.monotonic()
        hurry.set()  # a second Ctrl-C
        await asyncio.wait_for(shutdown, BOUND)
        took = time.monotonic() - began
        return d

    with caplog.at_level("INFO"):
        d = asyncio.run(scenario())
    assert fields(caplog, WAITING) == [{"records": 3, "seconds": GRACE}]
    assert took < BOUND
    assert d.recorder.lost == 3
    assert fields(caplog, LOST) == [{"lost": 3}]
    assert [f["run"] for f in fields(caplog, "run record lost at shutdown")] == [r.id for r in kept]
    # Nothing left behind on the loop: no task destroyed pending, no exception unretrieved.
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text


def test_a_hurried_stop_still_writes_what_the_store_takes_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FullStore()
    store.down = True
    kept = [record(minute, RunStatus.SUCCEEDED) for minute in range(3)]

    async def scenario() -> Dispatcher:
        d = dispatcher(store)
        d.recorder.later(kept)
        assert await d.recorder.flush(0.05) is False  # the flush is on, and fails
        store.down = False  # the store is back: the flush's next try (50 ms) writes them
        hurry = asyncio.Event()
        hurry.set()  # Ctrl-C twice before the stop reached the records
        await asyncio.wait_for(d.shutdown(GRACE, hurry), BOUND)
        return d

    with caplog.at_level("INFO"):
        d = asyncio.run(scenario())
    assert fields(caplog, WAITING) == [{"records": 3, "seconds": 1.0}]
    assert d.recorder.lost == 0
    assert [store.get(r.id) for r in kept] == kept
    assert not fields(caplog, LOST)


def test_a_hurried_stop_asks_a_store_back_during_a_long_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The default backoff grows to 30 s: a store back during it was not asked again within
    # the hurried second, and every record was lost to a store that answered.
    store = FullStore()
    store.down = True
    kept = [record(minute, RunStatus.SUCCEEDED) for minute in range(3)]

    async def scenario() -> Dispatcher:
        recorder = Recorder(store, retry_initial=30.0, retry_max=30.0)
        d = Dispatcher(store, owner="host:1:abc", actions=local_actions(), recorder=recorder)
        d.recorder.later(kept)
        assert await d.recorder.flush(0.05) is False  # failed, and sleeps 30 s
        store.down = False
        hurry = asyncio.Event()
        hurry.set()
        await asyncio.wait_for(d.shutdown(GRACE, hurry), BOUND)
        return d

    with caplog.at_level("INFO"):
        d = asyncio.run(scenario())
    assert d.recorder.lost == 0, caplog.text
    assert [store.get(r.id) for r in kept] == kept
    assert not fields(caplog, LOST)


@pytest.mark.parametrize("back", ["before the stop", "during the wait"])
def test_a_stop_asks_a_store_back_at_once_and_then_every_second(
    caplog: pytest.LogCaptureFixture, back: str
) -> None:
    # One stop signal (no hurry): a store back before the records' wait, or during it, was not
    # asked again before the backoff (up to 30 s) ran out, past a 5 s grace: all lost, exit 1.
    store = FullStore()
    store.down = True
    kept = [record(minute, RunStatus.SUCCEEDED) for minute in range(3)]

    async def scenario() -> Dispatcher:
        recorder = Recorder(store, retry_initial=30.0, retry_max=30.0)
        d = Dispatcher(store, owner="host:1:abc", actions=local_actions(), recorder=recorder)
        d.recorder.later(kept)
        assert await d.recorder.flush(0.05) is False  # failed, and sleeps 30 s
        if back == "before the stop":
            store.down = False
        else:
            asyncio.get_running_loop().call_later(0.5, setattr, store, "down", False)
        await asyncio.wait_for(d.shutdown(5.0, asyncio.Event()), BOUND)
        return d

    with caplog.at_level("INFO"):
        d = asyncio.run(scenario())
    assert d.recorder.lost == 0, caplog.text
    assert [store.get(r.id) for r in kept] == kept
