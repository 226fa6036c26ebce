"""The heartbeat (``controller.heartbeat``): each crontask renews its row in the run store, and
ends the runs of a crontask elsewhere whose row has lapsed. The in-memory run store, a fake
clock, real processes for "alive on this host"."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from reconciler.controller.heartbeat import LEASE_SECONDS, Heartbeat
from reconciler.controller.instance import instance_id
from reconciler.core.runs import PROCESS_DIED, RunRecord, RunStatus
from reconciler.store.base import StoreUnavailable
from reconciler.store.memory import MemoryRunStore
from tests.controller.test_recover_identity import T0, owner, running, start_time, status

T = TypeVar("T")
# Another machine's crontask (another boot): nothing on this host says whether it lives.
ELSEWHERE = owner(4242, 1, host="elsewhere", boot="0ther000", mark="e1")
ELSEWHERE_TOO = owner(4243, 1, host="elsewhere", boot="0ther000", mark="e2")


async def now_call(fn: Callable[..., T], *args: object) -> T:
    return fn(*args)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def heartbeat(
    store: MemoryRunStore, clock: Clock, *, outlives: Callable[[RunRecord], bool] | None = None
) -> tuple[Heartbeat, list[RunRecord]]:
    told: list[RunRecord] = []
    beat = Heartbeat(
        store,
        instance_id(),
        call=now_call,
        outlives=outlives or (lambda record: False),
        on_interrupted=told.extend,
        clock=clock,
    )
    return beat, told


def test_the_runs_of_a_crontask_whose_beat_lapsed_are_interrupted_and_told() -> None:
    store, clock = MemoryRunStore(), Clock()
    store.beat(ELSEWHERE, LEASE_SECONDS, T0)
    store.beat(ELSEWHERE_TOO, LEASE_SECONDS, T0)
    running(store, "default/a", ELSEWHERE)
    running(store, "default/b", ELSEWHERE_TOO)
    beat, told = heartbeat(store, clock)

    clock.now = T0 + timedelta(seconds=LEASE_SECONDS)
    store.beat(ELSEWHERE_TOO, LEASE_SECONDS, clock.now)  # it lives on
    asyncio.run(beat.beat())
    assert (status(store, "default/a"), status(store, "default/b")) == (RunStatus.RUNNING,) * 2

    clock.now += timedelta(seconds=1)
    asyncio.run(beat.beat())
    assert status(store, "default/a") is RunStatus.INTERRUPTED
    assert status(store, "default/b") is RunStatus.RUNNING
    assert [(r.task, r.reason) for r in told] == [("default/a", PROCESS_DIED)]
    # Its runs ended, its row goes; ours and the live one's stay.
    later = clock.now + timedelta(days=1)
    assert store.lapsed(later) == {beat.me, ELSEWHERE_TOO}


def test_a_run_whose_job_outlives_its_crontask_is_left_with_the_row() -> None:
    store, clock = MemoryRunStore(), Clock()
    store.beat(ELSEWHERE, 1.0, T0)
    running(store, "default/job", ELSEWHERE)
    beat, told = heartbeat(store, clock, outlives=lambda record: record.task == "default/job")
    clock.now = T0 + timedelta(minutes=1)
    asyncio.run(beat.beat())
    assert status(store, "default/job") is RunStatus.RUNNING
    assert told == []
    assert ELSEWHERE in store.lapsed(clock.now)


def test_a_crontask_this_host_sees_alive_keeps_its_runs() -> None:
    """A lapsed row is evidence, not proof: a process of this host that is still there wins."""
    store, clock = MemoryRunStore(), Clock()
    with subprocess.Popen(["sleep", "60"]) as alive:
        try:
            started = start_time(alive.pid)
            assert started is not None
            there = owner(alive.pid, started)
            store.beat(there, 1.0, T0)
            running(store, "default/a", there)
            beat, _ = heartbeat(store, clock)
            clock.now = T0 + timedelta(minutes=1)
            asyncio.run(beat.beat())
            assert status(store, "default/a") is RunStatus.RUNNING
            assert there in store.lapsed(clock.now)  # kept: it may beat again
        finally:
            alive.kill()


def test_an_instance_that_never_beat_is_left_alone() -> None:
    """A replica, or a crontask from before the heartbeat: nothing says that it ended."""
    store, clock = MemoryRunStore(), Clock()
    running(store, "default/a", ELSEWHERE)
    beat, _ = heartbeat(store, clock)
    clock.now = T0 + timedelta(days=1)
    asyncio.run(beat.beat())
    assert status(store, "default/a") is RunStatus.RUNNING


class Flaky(MemoryRunStore):
    down = False

    def beat(self, instance: str, lease_seconds: float, now: datetime) -> None:
        if self.down:
            raise StoreUnavailable("down")
        super().beat(instance, lease_seconds, now)


def test_a_store_that_does_not_answer_is_said_once_and_a_lapse_after_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, clock = Flaky(), Clock()
    beat, _ = heartbeat(store, clock)
    asyncio.run(beat.beat())
    store.down = True
    with caplog.at_level(logging.INFO, logger="crontask"):
        for _ in range(3):
            clock.now += timedelta(seconds=LEASE_SECONDS / 2)
            asyncio.run(beat.beat())
        store.down = False
        asyncio.run(beat.beat())
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "heartbeat: the run store did not answer; will try again",
        "heartbeat: the run store answers again",
        "heartbeat: this crontask's beat had lapsed; a crontask sharing the store may have "
        "marked its runs interrupted meanwhile",
    ]


def test_the_component_beats_until_stopped_then_removes_its_row() -> None:
    store = MemoryRunStore()
    beat = Heartbeat(store, instance_id(), call=now_call, interval=0.01)

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        component = asyncio.create_task(beat.run(ready.set, stop))
        await asyncio.wait_for(ready.wait(), 5)
        far = datetime.now(UTC) + timedelta(days=1)
        assert store.lapsed(far) == {beat.me}  # beat once before it said it was ready
        stop.set()
        await asyncio.wait_for(component, 5)
        assert store.lapsed(far) == set()

    asyncio.run(main())
