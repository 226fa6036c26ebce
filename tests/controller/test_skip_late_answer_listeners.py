"""A skip whose record the store answers late (past ``answer_wait``: a lock held, a network gone
silent) is kept, and written once; its run listeners (metrics, the notifier, the status
reporter) hear of it once it is known to be written by this process, exactly once: whether the
late call's own insert or the kept record's went in, in either order. Not if the slot's record
is another's. A real SQLite store, behind a switch that holds its inserts until the test
releases them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.recorder import Recorder
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import RunStore, open_store, sqlite_url
from reconciler.store.base import StoreUnavailable
from tests.helpers import definition, local_actions

SLOT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
KEY = "default/job"
ME = "host:1:me"
OTHER = "host:2:other"
WAIT = 0.05  # the tests' answer_wait
PATIENCE = 10.0


class Held:
    """A real store whose ``claim`` (a skip's insert) and ``claim_many`` (the kept record's
    insert) each wait for their own release when held; a released ``claim`` inserts, or
    fails as a connection lost before the statement went out (``lands`` False)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.claim_release = threading.Event()
        self.flush_release = threading.Event()
        self.claim_held = threading.Event()  # the skip's insert has come, and waits
        self.claim_answered = threading.Event()  # ... and has ended, either way
        self.lands = True
        self.hold_flush = True

    def claim(self, record: RunRecord) -> None:
        self.claim_held.set()
        try:
            assert self.claim_release.wait(PATIENCE)
            if not self.lands:
                raise StoreUnavailable("server closed the connection unexpectedly")
            self.store.claim(record)
        finally:
            self.claim_answered.set()

    def claim_many(self, records: Sequence[RunRecord]) -> list[bool]:
        if self.hold_flush:
            assert self.flush_release.wait(PATIENCE)
        return self.store.claim_many(records)

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[RunStore]:
    opened = open_store(sqlite_url(tmp_path / "state"), writer=True)
    yield opened
    opened.close()


async def until(what: str, condition: Callable[[], object]) -> None:
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def skips(heard: list[RunRecord]) -> list[RunRecord]:
    return [r for r in heard if r.status is RunStatus.SKIPPED]


class Scene:
    """A dispatcher on ``held`` whose slot is fired 40 s late under startingDeadlineSeconds
    30: a MissedDeadline skip, its insert held."""

    def __init__(self, held: Held, answer_wait: float = WAIT) -> None:
        self.held = held
        recorder = Recorder(cast(RunStore, held), retry_initial=0.01, answer_wait=answer_wait)
        self.dispatcher = Dispatcher(
            cast(RunStore, held),
            owner=ME,
            clock=lambda: SLOT + timedelta(seconds=40),
            actions=local_actions(),
            recorder=recorder,
        )
        self.heard: list[RunRecord] = []
        self.dispatcher.subscribe(self.heard.append)

    async def fire(self) -> None:
        """Fire the slot; return once its skip has stopped waiting for the store's answer."""
        job = definition("job", command={"args": ["true"]}, startingDeadlineSeconds=30)
        skipped = self.dispatcher.fire(job, SLOT)
        assert (skipped.status, skipped.reason) == (RunStatus.SKIPPED, "MissedDeadline")
        assert await self.dispatcher.drain(PATIENCE)

    async def skip_unanswered(self) -> None:
        """Fire the slot, its skip's insert left unanswered past ``answer_wait``."""
        await self.fire()  # the skip's write gave up waiting
        assert self.held.claim_held.is_set()
        assert not self.held.claim_answered.is_set()  # it has not been answered
        assert self.dispatcher.recorder.pending == 1  # kept

    async def settled(self) -> None:
        """The late insert answered, the kept record written, and the loop's turn after."""
        await until("the late insert's answer", self.held.claim_answered.is_set)
        assert await self.dispatcher.recorder.flush(PATIENCE)
        await asyncio.sleep(WAIT)  # the answer's callbacks, which a listener might wait on
        await self.dispatcher.recorder.close(PATIENCE)


def play(
    held: Held, steps: Callable[[Scene], Awaitable[None]], answer_wait: float = WAIT
) -> list[RunRecord]:
    """A scene on ``held``: ``steps``, then all settled. What its listeners heard."""

    async def main() -> list[RunRecord]:
        scene = Scene(held, answer_wait)
        await steps(scene)
        await scene.settled()
        return scene.heard

    return asyncio.run(main())


def stored(store: RunStore) -> RunRecord | None:
    return store.get(run_id(KEY, SLOT))


def heard_once(store: RunStore, heard: list[RunRecord]) -> RunRecord:
    """The slot's record, written, and the one skip the listeners heard of."""
    record = stored(store)
    assert record is not None
    assert skips(heard) == [record]
    return record


def test_a_skip_answered_late_reaches_the_listeners_once(sqlite: RunStore) -> None:
    """The late insert goes in first; the kept record's then finds it (the usual order: the
    store was slow, not gone)."""
    held = Held(sqlite)

    async def steps(scene: Scene) -> None:
        await scene.skip_unanswered()
        assert skips(scene.heard) == []  # nothing is known to be written yet
        held.claim_release.set()
        await until("the late insert's answer", held.claim_answered.is_set)
        held.flush_release.set()

    record = heard_once(sqlite, play(held, steps))
    assert (record.status, record.reason, record.owner) == (RunStatus.SKIPPED, "MissedDeadline", ME)


def test_a_skip_whose_kept_record_goes_in_first_reaches_the_listeners_once(
    sqlite: RunStore,
) -> None:
    """The kept record's insert goes in while the late one still waits; the late one then
    finds the slot recorded (its DuplicateRun is no second skip, nor another's record)."""
    held = Held(sqlite)

    async def steps(scene: Scene) -> None:
        await scene.skip_unanswered()
        held.flush_release.set()
        assert await scene.dispatcher.recorder.flush(PATIENCE)
        assert stored(sqlite) is not None
        held.claim_release.set()

    heard_once(sqlite, play(held, steps))


def test_a_skip_whose_late_insert_failed_reaches_the_listeners_once_its_record_is_written(
    sqlite: RunStore,
) -> None:
    held = Held(sqlite)
    held.lands = False

    async def steps(scene: Scene) -> None:
        await scene.skip_unanswered()
        held.claim_release.set()
        await until("the late insert's failure", held.claim_answered.is_set)
        await asyncio.sleep(WAIT)
        assert skips(scene.heard) == []  # still only kept
        held.flush_release.set()

    heard_once(sqlite, play(held, steps))


def test_a_late_skip_that_loses_to_another_record_of_its_slot_is_not_heard(
    sqlite: RunStore,
) -> None:
    """Another replica recorded the slot (its run) while the store did not answer here: no
    skip happened here, and the listeners hear of none."""
    held = Held(sqlite)
    held.lands = False  # the late insert fails; the kept one finds the other's record

    async def steps(scene: Scene) -> None:
        await scene.skip_unanswered()
        theirs = RunRecord(
            id=run_id(KEY, SLOT),
            task=KEY,
            scheduled_at=SLOT,
            trigger=Trigger.SCHEDULE,
            status=RunStatus.RUNNING,
            started_at=SLOT,
            owner=OTHER,
        )
        assert sqlite.claim_many([theirs]) == [True]
        held.claim_release.set()
        held.flush_release.set()

    heard = play(held, steps)
    record = stored(sqlite)
    assert record is not None
    assert record.owner == OTHER
    assert skips(heard) == []


def test_a_skip_answered_in_time_is_heard_once_as_before(sqlite: RunStore) -> None:
    held = Held(sqlite)
    held.claim_release.set()
    held.hold_flush = False

    async def steps(scene: Scene) -> None:
        await scene.fire()
        assert scene.dispatcher.recorder.pending == 0

    heard_once(sqlite, play(held, steps, answer_wait=PATIENCE))


def test_a_skip_kept_through_an_outage_reaches_the_listeners_once_written(
    sqlite: RunStore,
) -> None:
    """The same for a skip whose insert the store refused in time as unavailable: kept, and
    heard of once the buffer has written it."""
    held = Held(sqlite)
    held.lands = False
    held.claim_release.set()  # answered at once: unavailable

    async def steps(scene: Scene) -> None:
        await scene.fire()
        assert scene.dispatcher.recorder.pending == 1  # kept
        assert skips(scene.heard) == []
        held.flush_release.set()

    heard_once(sqlite, play(held, steps, answer_wait=PATIENCE))
