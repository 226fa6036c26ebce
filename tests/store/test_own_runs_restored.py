"""A run store restored from a backup under a running crontask holds runs of that very
crontask ``running`` whose ends went to the store since replaced: its heartbeat marks them
``interrupted`` once it finds them going in the store and not held here at two rounds in a row
(``Heartbeat.holds``: the dispatcher's runs, the recorder's records waiting or on their way).
Never a run it holds, one held at either look, one claimed after the first look, another
crontask's, or a Job's (its watch follows it); the row stays the claim of its slot. The real
SQLite file and PostgreSQL; fake clocks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from reconciler.controller.heartbeat import LEASE_SECONDS, RESTORED_MESSAGE, Heartbeat
from reconciler.controller.instance import instance_id
from reconciler.core.runs import PROCESS_DIED, RunRecord, RunStatus, Trigger, run_id
from reconciler.store.base import DuplicateRun, RunStore, StoreUnavailable

T = TypeVar("T")
T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
ME = instance_id()
OTHER = instance_id()  # another crontask sharing the store, alive


class Own:
    """This crontask's heartbeat on its own clock, holding the runs in ``held``; its store
    calls fail while ``down``."""

    def __init__(self, store: RunStore, outlives: Callable[[RunRecord], bool]) -> None:
        self.seconds = 0.0
        self.held: set[str] = set()
        self.down = False
        self.heartbeat = Heartbeat(
            store,
            ME,
            call=self._call,
            outlives=outlives,
            holds=lambda: set(self.held),
            clock=lambda: T0 + timedelta(hours=1, seconds=self.seconds),
            monotonic=lambda: self.seconds,
        )

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        if self.down:
            raise StoreUnavailable("the run store file was removed or replaced")
        return fn(*args)

    def tick(self, seconds: float) -> None:
        self.seconds += seconds
        asyncio.run(self.heartbeat.beat())


def _claim(store: RunStore, task: str, owner: str = ME) -> RunRecord:
    record = RunRecord(
        run_id(task, T0), task, T0, Trigger.SCHEDULE, RunStatus.RUNNING, started_at=T0, owner=owner
    )
    store.claim(record)
    return record


def _status(store: RunStore, record: RunRecord) -> RunStatus:
    found = store.get(record.id, record.attempt)
    assert found is not None
    return found.status


def test_own_runs_no_longer_held_are_interrupted_at_the_second_look(sql_store: RunStore) -> None:
    jobs: Collection[str] = {"default/job"}
    own = Own(sql_store, outlives=lambda record: record.task in jobs)
    restored = _claim(sql_store, "default/restored")  # its end went to the old store
    held = _claim(sql_store, "default/held")
    own.held.add(held.id)
    theirs = _claim(sql_store, "default/theirs", OTHER)
    job = _claim(sql_store, "default/job")
    later_held = _claim(sql_store, "default/later-held")

    own.tick(0)  # the first look: suspected only
    assert _status(sql_store, restored) is RunStatus.RUNNING
    # Claimed after the first look (its claim answered now), and one held again: not marked.
    claimed_since = _claim(sql_store, "default/claimed-since")
    own.held.add(later_held.id)
    own.tick(5)

    done = sql_store.get(restored.id, restored.attempt)
    assert done is not None
    assert done.status is RunStatus.INTERRUPTED, done
    assert done.reason == PROCESS_DIED
    assert done.message == RESTORED_MESSAGE.format(owner=ME)
    assert done.started_at == T0
    for record in (held, theirs, job, later_held, claimed_since):
        assert _status(sql_store, record) is RunStatus.RUNNING, record.task
    # The finished row is still its slot's claim: the slot does not run again.
    with pytest.raises(DuplicateRun):
        _claim(sql_store, "default/restored")

    own.tick(5)  # not held at two looks now
    assert _status(sql_store, claimed_since) is RunStatus.INTERRUPTED
    assert _status(sql_store, later_held) is RunStatus.RUNNING


def test_looked_at_each_lease_and_after_a_failed_round(sql_store: RunStore) -> None:
    own = Own(sql_store, outlives=lambda record: False)
    own.tick(0)
    restored = _claim(sql_store, "default/restored")  # the store restored since that look
    own.tick(5)
    own.tick(5)
    assert _status(sql_store, restored) is RunStatus.RUNNING  # not looked at within a lease
    own.tick(LEASE_SECONDS)
    own.tick(5)
    assert _status(sql_store, restored) is RunStatus.INTERRUPTED

    restored_again = _claim(sql_store, "default/restored-again")
    own.down = True  # the store away a round (a file replaced), then back: looked at at once
    own.tick(5)
    own.down = False
    own.tick(5)
    own.tick(5)
    assert _status(sql_store, restored_again) is RunStatus.INTERRUPTED
