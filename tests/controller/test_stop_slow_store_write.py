"""A stop whose run store is slow, not down: a write still under way when the records' wait
(``--shutdown-grace``) ends may yet land, so its records are said not confirmed, not lost (an
operator repairing history from the lost lines would repair records that are written), and the
write's end is said when it comes. Records that never reached a write are lost, as before. The
in-memory store, whose writes wait for the test's word; the real dispatcher and recorder."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.lost import AtStop, Waited, Writes
from reconciler.controller.recorder import Recorder
from reconciler.controller.waiting import SAVE
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.store.base import StoreUnavailable
from tests.controller.test_recorder import record
from tests.controller.test_recorder_lost_and_later import FullStore, fields
from tests.helpers import local_actions, wait_for

GRACE = 0.3  # the records' wait at the stop: the slow write outlasts it
ANSWER = 0.05  # the recorder's wait for an answer (``lane.ANSWER_WAIT``)
BOUND = 20.0
LOST = "run records lost at shutdown: the store stayed unavailable"
NOT_CONFIRMED = "run records not confirmed at shutdown: a write to the store was still under way"
LANDED = "run records written after the shutdown's wait: the write under way went through"
FAILED = "run records lost at shutdown: the write under way failed"


class SlowStore(FullStore):
    """Once ``slow``, ``save_many`` waits until ``release`` (a lock another holds, a disk that
    stalls), then writes, or raises if ``fail``."""

    def __init__(self) -> None:
        super().__init__()
        self.slow = False
        self.fail = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def save_many(self, records: Sequence[RunRecord]) -> list[RunRecord]:
        if self.slow:
            self.entered.set()
            self.release.wait(BOUND)
            if self.fail:
                raise StoreUnavailable("server closed the connection unexpectedly")
        return super().save_many(records)


@pytest.fixture
def store() -> Iterator[SlowStore]:
    slow = SlowStore()
    yield slow
    slow.release.set()  # a test that failed early leaves no thread waiting


def dispatcher(store: SlowStore, io_threads: int = 2) -> Dispatcher:
    recorder = Recorder(
        store, io_threads=io_threads, retry_initial=0.01, retry_max=0.05, answer_wait=ANSWER
    )
    return Dispatcher(store, owner="host:1:abc", actions=local_actions(), recorder=recorder)


def stop(begin: Callable[[], Coroutine[Any, Any, Dispatcher]]) -> Dispatcher:
    """``begin`` run on a loop of its own, then its dispatcher's stop (one signal)."""

    async def scenario() -> Dispatcher:
        d = await begin()
        await asyncio.wait_for(d.shutdown(GRACE, asyncio.Event()), BOUND)
        return d

    return asyncio.run(scenario())


def runs(caplog: pytest.LogCaptureFixture, message: str) -> list[object]:
    return [f["run"] for f in fields(caplog, message)]


def test_a_write_under_way_at_the_stop_is_not_said_lost_and_its_landing_is_said(
    caplog: pytest.LogCaptureFixture, store: SlowStore
) -> None:
    first = record(0, RunStatus.SUCCEEDED)

    async def begin() -> Dispatcher:
        d = dispatcher(store)
        store.slow = True
        assert await d.recorder.save(first) is False  # no answer within ANSWER: kept
        await asyncio.to_thread(store.entered.wait, BOUND)  # in the store's thread
        return d

    with caplog.at_level("INFO"):
        d = stop(begin)
        assert not fields(caplog, LOST), caplog.text
        assert fields(caplog, NOT_CONFIRMED) == [{"records": 1}]
        assert runs(caplog, "run record not confirmed at shutdown") == [first.id]
        assert d.recorder.lost == 1  # not known written: exit status 1 so far
        store.release.set()
        wait_for("the write's end said", lambda: fields(caplog, LANDED))
    assert fields(caplog, LANDED) == [{"records": 1}]
    assert store.get(first.id) == first
    assert d.recorder.lost == 0  # known written: nothing makes the exit status 1
    assert not fields(caplog, FAILED)


def test_a_write_of_a_kept_record_under_way_that_fails_after_the_stop_is_said_lost(
    caplog: pytest.LogCaptureFixture, store: SlowStore
) -> None:
    kept = record(0, RunStatus.SUCCEEDED)

    async def begin() -> Dispatcher:
        d = dispatcher(store)
        store.down = True
        d.recorder.later([kept])
        assert await d.recorder.flush(0.05) is False  # tried, failed: the flush backs off
        store.slow, store.down = True, False  # back, but slow: the next try waits in the store
        await asyncio.to_thread(store.entered.wait, BOUND)
        return d

    with caplog.at_level("INFO"):
        d = stop(begin)
        assert not fields(caplog, LOST), caplog.text
        assert fields(caplog, NOT_CONFIRMED) == [{"records": 1}]
        assert runs(caplog, "run record not confirmed at shutdown") == [kept.id]
        store.fail = True
        store.release.set()
        wait_for("the write's failure said", lambda: fields(caplog, FAILED))
    assert [f["records"] for f in fields(caplog, FAILED)] == [1]
    assert runs(caplog, "run record lost at shutdown") == [kept.id]
    assert d.recorder.lost == 1
    assert not fields(caplog, LANDED)
    assert store.get(kept.id) is None


def test_records_that_never_reached_a_write_are_lost_beside_one_under_way(
    caplog: pytest.LogCaptureFixture, store: SlowStore
) -> None:
    first = record(0, RunStatus.SUCCEEDED)
    after = record(1, RunStatus.SUCCEEDED)  # handed in behind the slow write
    skip = record(2, RunStatus.SKIPPED)  # its write waits for the store's only thread

    async def begin() -> Dispatcher:
        d = dispatcher(store, io_threads=1)
        store.slow = True
        assert await d.recorder.save(first) is False
        await asyncio.to_thread(store.entered.wait, BOUND)
        assert await d.recorder.save(after) is False
        assert await d.recorder.add(skip) is False
        return d

    with caplog.at_level("INFO"):
        d = stop(begin)
        assert fields(caplog, LOST) == [{"lost": 2}], caplog.text
        assert runs(caplog, "run record lost at shutdown") == [after.id, skip.id]
        assert fields(caplog, NOT_CONFIRMED) == [{"records": 1}]
        assert runs(caplog, "run record not confirmed at shutdown") == [first.id]
        assert d.recorder.lost == 3
        store.release.set()
        wait_for("the write's end said", lambda: fields(caplog, LANDED))
    assert fields(caplog, LANDED) == [{"records": 1}]
    assert d.recorder.lost == 2  # the two that never reached a write: exit status 1
    assert store.get(first.id) == first
    assert store.get(after.id) is None
    assert store.get(skip.id) is None


def test_a_write_that_landed_before_the_loop_took_its_answer_is_not_said_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A write goes through in its thread, and the stop looks at what waits before the loop
    has taken the answer (a busy loop): the store holds the state that waits, so it is not
    lost; a newer state of another run, which no write took, is."""
    written = record(0, RunStatus.SUCCEEDED)
    newer = record(1, RunStatus.FAILED)
    older = dataclasses.replace(newer, status=RunStatus.RUNNING)
    writes, at_stop = Writes(), AtStop()
    for sent in ([written], [older]):
        write: Future[None] = Future()
        writes.add(write, sent)
        write.set_result(None)  # landed, its answer not taken yet
    waiting: Waited = [((r.id, r.attempt), (r, SAVE)) for r in (written, newer)]
    with caplog.at_level("INFO"):
        at_stop.say(waiting, writes)
    assert fields(caplog, LANDED) == [{"records": 1}]
    assert fields(caplog, LOST) == [{"lost": 1}]
    assert runs(caplog, "run record lost at shutdown") == [newer.id]
    assert at_stop.missing == 1
