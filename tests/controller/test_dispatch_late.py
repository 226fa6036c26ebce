"""A run decided and claimed ahead of its slot (``Dispatcher.due``) whose process is away when
its slot comes (SIGSTOP, a frozen VM) and runs again well past it: it is looked at again
before it starts (``RunExecution._late``), not started on its old decision.

The dispatcher's clock is the loop's shifted to a fixed date, as in ``test_dispatch_ahead``,
plus ``away``: moved by hand, it is the wall clock jumping while the process was frozen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord, RunStatus, run_id
from reconciler.runner.base import TOO_LATE, Actions, Outcome, failed
from reconciler.store import MemoryRunStore
from tests.controller.test_dispatch_ahead import EPOCH, KEY, Gated
from tests.helpers import definition

OWNER = "host:1:abc"


class Away:
    """The wall clock of a process frozen for a while: ``jump`` moves it on at once."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.loop, self.origin, self.away = loop, loop.time(), 0.0

    def __call__(self) -> datetime:
        return EPOCH + timedelta(seconds=self.loop.time() - self.origin + self.away)

    def jump(self, seconds: float) -> None:
        self.away += seconds


def setup(**spec: Any) -> tuple[Dispatcher, Gated, MemoryRunStore, Definition, Away]:
    store = MemoryRunStore()
    action = Gated(store)
    clock = Away()
    d = Dispatcher(store, owner=OWNER, clock=clock, actions=Actions([action]))
    return d, action, store, definition("job", command={"args": ["true"]}, **spec), clock


async def claimed_ahead(d: Dispatcher, store: MemoryRunStore, job: Definition) -> datetime:
    """A slot 0.2 s ahead, handed over now: decided, and its claim in the store."""
    slot = EPOCH + timedelta(seconds=0.2)
    d.due(job, slot)
    while store.get(run_id(KEY, slot)) is None:
        await asyncio.sleep(0.005)
    return slot


def test_a_run_decided_ahead_past_its_deadline_when_its_slot_comes_does_not_start() -> None:
    """Frozen 20 s between its claim and its slot, startingDeadlineSeconds 2: skipped, and
    its record (the claim, written ahead) says why; nothing began."""

    async def scenario() -> tuple[RunRecord | None, list[RunRecord], int]:
        d, action, store, job, clock = setup(startingDeadlineSeconds=2)
        heard: list[RunRecord] = []
        d.subscribe(heard.append)
        slot = await claimed_ahead(d, store, job)
        clock.jump(20)
        assert await d.drain(5)
        await d.shutdown(0)
        return store.get(run_id(KEY, slot)), heard, len(action.began)

    record, heard, began = asyncio.run(scenario())
    assert began == 0
    assert record is not None
    assert (record.status, record.reason, record.started_at) == (
        RunStatus.SKIPPED,
        "MissedDeadline",
        None,
    )
    assert (record.message or "").startswith("not started: ")
    assert "past startingDeadlineSeconds=2" in (record.message or "")
    assert heard == [record]  # never heard running


def test_a_loop_frozen_past_the_slot_is_seen_too() -> None:
    """The loop's own clock jumps (the process was stopped, with it its monotonic clock's
    reader): 1.2 s past the slot, startingDeadlineSeconds 1."""

    async def scenario() -> tuple[RunRecord | None, int]:
        d, action, store, job, _ = setup(startingDeadlineSeconds=1)
        slot = await claimed_ahead(d, store, job)
        time.sleep(1.2)  # the whole loop is away across the slot
        assert await d.drain(5)
        await d.shutdown(0)
        return store.get(run_id(KEY, slot)), len(action.began)

    record, began = asyncio.run(scenario())
    assert began == 0
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.SKIPPED, "MissedDeadline")


def test_with_no_deadline_a_late_run_still_starts_on_its_claim() -> None:
    async def scenario() -> tuple[RunRecord | None, int]:
        d, action, store, job, clock = setup()
        slot = await claimed_ahead(d, store, job)
        clock.jump(20)
        assert await d.drain(5)
        await d.shutdown(0)
        return store.get(run_id(KEY, slot)), len(action.began)

    record, began = asyncio.run(scenario())
    assert began == 1
    assert record is not None
    assert record.status is RunStatus.SUCCEEDED


def test_a_late_run_whose_record_was_ended_meanwhile_does_not_start_nor_rewrite_it() -> None:
    """Away past its lease, the crontask was judged dead by another sharing the store, which
    marked its runs interrupted: that record stays, and nothing starts."""

    async def scenario() -> tuple[RunRecord | None, RunRecord | None, int]:
        d, action, store, job, clock = setup()
        slot = await claimed_ahead(d, store, job)
        clock.jump(40)
        (marked,) = store.mark_interrupted([OWNER], clock())
        assert await d.drain(5)
        await d.shutdown(0)
        return marked, store.get(run_id(KEY, slot)), len(action.began)

    marked, record, began = asyncio.run(scenario())
    assert began == 0
    assert record == marked
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.INTERRUPTED, "ProcessDied")


def test_a_run_on_time_costs_no_store_read() -> None:
    """The usual case: the look as its slot comes reads no store."""

    async def scenario() -> int:
        d, _, store, job, _ = setup(startingDeadlineSeconds=2)
        reads: list[str] = []
        get = store.get
        heard: list[RunRecord] = []
        d.subscribe(heard.append)

        def counted(run: str, attempt: int | None = None) -> RunRecord | None:
            if not heard:  # before its start: then the attempt reads it itself (``Gated``)
                reads.append(run)
            return get(run, attempt)

        await claimed_ahead(d, store, job)
        store.get = counted  # type: ignore[method-assign,assignment]
        assert await d.drain(5)
        await d.shutdown(0)
        return len(reads)

    assert asyncio.run(scenario()) == 0


def test_a_busy_machine_starting_a_run_seconds_late_reads_no_store() -> None:
    """A storm of slots starts some runs seconds late: that is no process away, and each must
    not pay a store read (a command storm of 3 000 slots read the store for half its runs)."""

    async def scenario() -> tuple[int, int]:
        d, action, store, job, clock = setup()
        reads: list[str] = []
        get = store.get
        heard: list[RunRecord] = []
        d.subscribe(heard.append)

        def counted(run: str, attempt: int | None = None) -> RunRecord | None:
            if not heard:
                reads.append(run)
            return get(run, attempt)

        await claimed_ahead(d, store, job)
        store.get = counted  # type: ignore[method-assign,assignment]
        clock.jump(3)
        assert await d.drain(5)
        await d.shutdown(0)
        return len(reads), len(action.began)

    assert asyncio.run(scenario()) == (0, 1)


def test_a_run_claimed_ahead_starts_late_after_its_task_moved_while_its_claim_stands() -> None:
    """With replicas: the task moved in the second before its slot, and this replica was busy,
    not away: its claim still stands, so the new owner cannot run that slot, and it runs
    here, as it would have on time."""

    async def scenario() -> tuple[RunRecord | None, int]:
        d, action, store, job, clock = setup()
        slot = await claimed_ahead(d, store, job)
        d.owns = lambda key: False
        clock.jump(1.2)
        assert await d.drain(5)
        await d.shutdown(0)
        return store.get(run_id(KEY, slot)), len(action.began)

    record, began = asyncio.run(scenario())
    assert began == 1
    assert record is not None
    assert record.status is RunStatus.SUCCEEDED


class Spawning:
    """A command's stand-in that waits for its instant itself (``StartsAt``), on the loop: a
    loop frozen across the instant (``time.sleep``) finds it past ``until``, as a command's
    spawner thread of a process frozen by SIGSTOP does, and starts nothing then."""

    field = "command"

    def __init__(self) -> None:
        self.began: list[float] = []

    def attempt(self, definition: Definition, record: RunRecord) -> _Spawned:
        return _Spawned(self)


class _Spawned:
    def __init__(self, action: Spawning) -> None:
        self.action = action
        self.when: float | None = None
        self.until: float | None = None
        self.began: Callable[[float], None] | None = None

    def start_at(
        self, when: float | None, began: Callable[[float], None], until: float | None = None
    ) -> None:
        self.when, self.began, self.until = when, began, until

    async def run(self) -> Outcome:
        assert self.began is not None
        loop = asyncio.get_running_loop()
        if self.when is not None:
            await asyncio.sleep(self.when - loop.time())
        if self.until is not None and loop.time() > self.until:
            return failed(TOO_LATE, f"stopped before it started: {TOO_LATE}")
        self.action.began.append(loop.time())
        self.began(loop.time())
        return Outcome(RunStatus.SUCCEEDED, 0, None, "exit code 0", "")

    def stop(self, reason: str) -> None:
        pass


def frozen_past_the_slot(**spec: Any) -> tuple[RunRecord | None, int]:
    async def scenario() -> tuple[RunRecord | None, int]:
        d, _, store, job, _ = setup(**spec)
        action = Spawning()
        d.actions = Actions([action])
        slot = await claimed_ahead(d, store, job)
        time.sleep(1.5)  # the whole process is away across the slot and 0.3 s past its deadline
        assert await d.drain(5)
        await d.shutdown(0)
        return store.get(run_id(KEY, slot)), len(action.began)

    return asyncio.run(scenario())


def test_an_attempt_that_waits_for_its_instant_itself_is_looked_at_again_when_late() -> None:
    record, began = frozen_past_the_slot(startingDeadlineSeconds=1)
    assert began == 0
    assert record is not None
    assert (record.status, record.reason) == (RunStatus.SKIPPED, "MissedDeadline")


def test_an_attempt_found_too_late_by_its_own_wait_starts_once_if_it_still_may() -> None:
    record, began = frozen_past_the_slot()
    assert began == 1
    assert record is not None
    assert record.status is RunStatus.SUCCEEDED
