"""Under ``Forbid`` a first attempt whose claim the run store holds (``--ha``: a hanging store)
holds its task, and the slots that come meanwhile are turned away. Once two or more were, and
the claim was held ``HELD_AWAY`` seconds, the held attempt no longer starts when the store
answers (hours late, maybe): it is recorded ``Superseded`` and the latest slot turned away runs
instead, as a ``catchup``, which nothing supersedes in turn; a store merely slower than the
task's interval still runs every other slot, and one merely slow (or without ``--ha``) runs the
held attempt. A real SQLite store behind a wrapper whose claims wait on events; real processes.
The tests of a store that hung count any hold as long (``hung``): no test waits 10 s."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from reconciler.controller import late_starts
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import account_for_slots
from reconciler.core.plan import Operation, Step
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.store import RunStore, open_store, sqlite_url
from reconciler.store.base import ExclusiveClaim
from tests.controller.test_forbid_after_outage import (
    JOB,
    T0,
    SilentHa,
    dispatcher,
    stored,
)
from tests.controller.test_recorder_silent_store import Silent, until
from tests.helpers import definition

SECOND = timedelta(seconds=1)


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[RunStore]:
    opened = open_store(sqlite_url(tmp_path / "state"), writer=True)
    yield opened
    opened.close()


@pytest.fixture
def hung(monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim held at all counts as held long: the store hung (not merely slow)."""
    monkeypatch.setattr(late_starts, "HELD_AWAY", 0.0, raising=False)


class Slow(Silent):
    """Every claim that looks for another replica's run waits until the test lets it through:
    a store slower than the task's interval, driven step by step."""

    def __init__(self, store: RunStore) -> None:
        super().__init__(store)
        self.arrived = threading.Semaphore(0)
        self.go = threading.Semaphore(0)

    def claim_exclusive(self, records: Sequence[RunRecord]) -> list[ExclusiveClaim]:
        self.arrived.release()
        assert self.go.acquire(timeout=30)
        return self.store.claim_exclusive(records)


@pytest.mark.usefixtures("hung")
def test_a_claim_held_past_later_slots_is_superseded_by_the_latest(sqlite: RunStore) -> None:
    """T0's claim hangs while T0+1..T0+4 come: T0 does not start when the store answers, T0+4
    runs (a catch-up), T0+1..T0+3 keep their Forbid skips: one record each."""
    silent = SilentHa(sqlite)
    slots = [T0 + n * SECOND for n in range(5)]

    async def main() -> None:
        d = dispatcher(silent, ha=True)
        silent.silence("claim_exclusive")
        d.fire(JOB, slots[0])
        await until("the claim to be held", silent.holding.is_set)
        for slot in slots[1:]:
            assert d.fire(JOB, slot).status is RunStatus.SKIPPED
        silent.release(lands=True, answers=True)
        assert await d.drain(10)
        assert await d.recorder.flush(5)
        await d.shutdown(0)

    asyncio.run(main())
    held = stored(sqlite, slots[0])
    assert (held.status, held.reason, held.started_at) == (RunStatus.SKIPPED, "Superseded", None)
    for slot in slots[1:4]:
        assert stored(sqlite, slot).reason == "ConcurrencyForbid"
    latest = stored(sqlite, slots[4])
    assert (latest.status, latest.trigger) == (RunStatus.SUCCEEDED, Trigger.CATCHUP)


@pytest.mark.usefixtures("hung")
def test_the_latest_slot_past_its_deadline_is_not_caught_up_either(sqlite: RunStore) -> None:
    """startingDeadlineSeconds=30, the store answers 100 s after the latest turned-away slot:
    the held run is superseded, and the latest is recorded ``MissedDeadline``, not run."""
    silent = SilentHa(sqlite)
    job = definition(
        "job", command={"args": ["true"]}, concurrencyPolicy="Forbid", startingDeadlineSeconds=30
    )
    slots = [T0 + n * SECOND for n in range(3)]
    now = [T0]

    async def main() -> None:
        d = dispatcher(silent, ha=True)
        d.clock = lambda: now[0]
        silent.silence("claim_exclusive")
        for slot in slots:
            now[0] = slot
            d.fire(job, slot)
            await until("the claim to be held", silent.holding.is_set)
        now[0] = slots[-1] + timedelta(seconds=100)
        silent.release(lands=True, answers=True)
        assert await d.drain(10)
        assert await d.recorder.flush(5)
        await d.shutdown(0)

    asyncio.run(main())
    reasons = [sqlite.get(run_id(job.key, slot)) for slot in slots]
    assert [(r.status, r.reason) for r in reasons if r is not None] == [
        (RunStatus.SKIPPED, "Superseded"),
        (RunStatus.SKIPPED, "ConcurrencyForbid"),
        (RunStatus.SKIPPED, "MissedDeadline"),
    ]


def test_a_claim_held_past_one_slot_starts_and_that_slot_is_skipped(sqlite: RunStore) -> None:
    """One slot turned away (a store slower than the interval, not twice): the held run starts,
    as before, and the slot keeps its Forbid skip."""
    silent = SilentHa(sqlite)

    async def main() -> None:
        d = dispatcher(silent, ha=True)
        silent.silence("claim_exclusive")
        d.fire(JOB, T0)
        await until("the claim to be held", silent.holding.is_set)
        d.fire(JOB, T0 + SECOND)
        silent.release(lands=True, answers=True)
        assert await d.drain(10)
        assert await d.recorder.flush(5)
        await d.shutdown(0)

    asyncio.run(main())
    assert stored(sqlite, T0).status is RunStatus.SUCCEEDED
    assert stored(sqlite, T0 + SECOND).reason == "ConcurrencyForbid"


@pytest.mark.usefixtures("hung")
@pytest.mark.parametrize("per_claim", [1, 2])
def test_a_store_slower_than_the_interval_still_runs(sqlite: RunStore, per_claim: int) -> None:
    """Every claim takes longer than the interval: ``per_claim`` slots come while each claim
    waits. With one, every other slot runs; with two, each held run is superseded by a catch-up
    that nothing supersedes in turn (its own turned-away slots are skipped), so runs go on."""
    slow = Slow(sqlite)
    slots = iter(T0 + n * SECOND for n in range(1000))
    fired: list[datetime] = []

    async def claim_waits() -> None:
        await until("a claim to come", lambda: slow.arrived.acquire(blocking=False))

    async def main() -> None:
        d = dispatcher(slow, ha=True)

        def next_slots(count: int) -> None:
            for _ in range(count):
                fired.append(next(slots))
                d.fire(JOB, fired[-1])

        for _ in range(4):
            next_slots(1)
            await claim_waits()
            next_slots(per_claim)
            slow.go.release()  # the held claim answers
            if per_claim > 1:  # its catch-up claims, as slowly
                await claim_waits()
                next_slots(per_claim)
                slow.go.release()
            await until("the run to end", lambda: not d.active(JOB.key))
        assert await d.drain(10)
        assert await d.recorder.flush(5)
        await d.shutdown(0)

    asyncio.run(main())
    records = [stored(sqlite, slot) for slot in fired]
    ran = [r.scheduled_at for r in records if r.status is RunStatus.SUCCEEDED]
    assert len(ran) == 4, [(r.scheduled_at, r.status, r.reason) for r in records]
    reasons = [r.reason for r in records if r.status is RunStatus.SKIPPED]
    if per_claim == 1:  # as before: each held run starts, the slot turned away is skipped
        assert ran == fired[::2]
        assert reasons == ["ConcurrencyForbid"] * 4
    else:  # held, 2 turned away (the latest runs), 2 turned away for the catch-up: skipped
        assert ran == fired[2::5]
        assert all(r.trigger is Trigger.CATCHUP for r in records if r.scheduled_at in ran)
        assert reasons == ["Superseded"] + ["ConcurrencyForbid"] * 3 + reasons[4:]
        assert reasons.count("Superseded") == 4


def _held_then_answered(
    silent: SilentHa, *, ha: bool, call: str, then: Callable[[Dispatcher], None]
) -> None:
    """T0's claim (``call``) is held while ``then`` fires more; then the store answers."""

    async def main() -> None:
        d = dispatcher(silent, ha=ha)
        silent.silence(call)
        d.fire(JOB, T0)
        await until("the claim to be held", silent.holding.is_set)
        then(d)
        silent.release(lands=True, answers=True)
        assert await d.drain(10)
        assert await d.recorder.flush(5)
        await d.shutdown(0)

    asyncio.run(main())


def _outcomes(store: RunStore, count: int) -> list[tuple[RunStatus, str | None, Trigger]]:
    return [
        (r.status, r.reason, r.trigger)
        for r in (stored(store, T0 + n * SECOND) for n in range(count))
    ]


RAN = (RunStatus.SUCCEEDED, None, Trigger.SCHEDULE)
FORBIDDEN = (RunStatus.SKIPPED, "ConcurrencyForbid", Trigger.SCHEDULE)


def _two_more(d: Dispatcher) -> None:
    d.fire(JOB, T0 + SECOND)
    d.fire(JOB, T0 + 2 * SECOND)


@pytest.mark.usefixtures("hung")
def test_without_ha_a_held_claim_is_not_superseded(sqlite: RunStore) -> None:
    """Without ``--ha`` the recorder answers a claim within ANSWER_WAIT however the store
    does (the run goes on unchecked): a store locked for seconds is slow, not hung. Two slots
    turned away: the held run starts, and both are skipped."""
    _held_then_answered(SilentHa(sqlite), ha=False, call="claim_many", then=_two_more)
    assert _outcomes(sqlite, 3) == [RAN, FORBIDDEN, FORBIDDEN]


def test_a_claim_answered_within_seconds_is_not_superseded(sqlite: RunStore) -> None:
    """``--ha``, two slots turned away, but the claim answered well within ``HELD_AWAY``: a
    store slower than two intervals, not one that hung. The held run starts."""
    _held_then_answered(SilentHa(sqlite), ha=True, call="claim_exclusive", then=_two_more)
    assert _outcomes(sqlite, 3) == [RAN, FORBIDDEN, FORBIDDEN]


@pytest.mark.usefixtures("hung")
def test_a_task_suspended_while_its_claim_is_held_runs_no_catch_up(sqlite: RunStore) -> None:
    """Suspended (nothing else changed: the runs going go on) while T0's claim is held and
    two slots were turned away: the slot kept is skipped, no catch-up of it runs."""
    suspended = definition(
        "job", command={"args": ["true"]}, concurrencyPolicy="Forbid", suspend=True
    )

    def then(d: Dispatcher) -> None:
        _two_more(d)
        step = Step(Operation.UPDATE, JOB.key, suspended, JOB)
        account_for_slots([step], MemoryScheduler(lambda k, at: None, T0), d, T0 + 3 * SECOND)

    _held_then_answered(SilentHa(sqlite), ha=True, call="claim_exclusive", then=then)
    assert _outcomes(sqlite, 3) == [RAN, FORBIDDEN, FORBIDDEN]


@pytest.mark.usefixtures("hung")
def test_the_catch_up_as_the_fence_lifts_is_the_slot_kept(sqlite: RunStore) -> None:
    """The fence held this replica over T0+3 while T0's claim hung: as it lifts, T0+3 comes as
    a catch-up. It is the latest slot missed: it runs once the claim is answered, T0 is
    superseded and T0+1, T0+2 skipped (not T0+3 skipped and T0+2 run)."""

    def then(d: Dispatcher) -> None:
        _two_more(d)
        d.paused = "membership lapsed"
        d.fire(JOB, T0 + 3 * SECOND)  # not started while paused
        d.paused = None
        d.supersede_held([JOB.key])  # the lift's: only runs that wait; T0 is claiming
        d.fire(JOB, T0 + 3 * SECOND, Trigger.CATCHUP)  # the latest missed slot

    _held_then_answered(SilentHa(sqlite), ha=True, call="claim_exclusive", then=then)
    assert _outcomes(sqlite, 4) == [
        (RunStatus.SKIPPED, "Superseded", Trigger.SCHEDULE),
        FORBIDDEN,
        FORBIDDEN,
        (RunStatus.SUCCEEDED, None, Trigger.CATCHUP),
    ]


@pytest.mark.usefixtures("hung")
def test_the_same_slot_turned_away_twice_counts_once(sqlite: RunStore) -> None:
    """A clock stepped back hands T0+1 over twice while T0's claim is held: one slot turned
    away, so T0 starts and T0+1 is skipped (not T0 superseded by a T0+1 already recorded)."""

    def then(d: Dispatcher) -> None:
        d.fire(JOB, T0 + SECOND)
        d.fire(JOB, T0 + SECOND)

    _held_then_answered(SilentHa(sqlite), ha=True, call="claim_exclusive", then=then)
    assert _outcomes(sqlite, 2) == [RAN, FORBIDDEN]


def test_a_run_decided_ahead_waiting_for_its_claim_is_not_superseded_by_one_slot(
    sqlite: RunStore,
) -> None:
    """The usual scheduled run is decided a little ahead of its instant (``due``): one whose
    claim the store holds past its instant and its patience, as a later slot comes, waits for
    its claim (it was never away) and starts once answered, that slot skipped, as one decided at
    its instant does; ``supersede_ahead`` is for a run whose claim was answered before this
    process went away."""
    silent = SilentHa(sqlite)
    now = [T0 - timedelta(seconds=0.05)]
    minute = timedelta(seconds=60)

    async def main() -> None:
        d = dispatcher(silent, ha=True)
        d.clock = lambda: now[0]
        silent.silence("claim_exclusive")
        d.fire(JOB, T0)  # handed over 50 ms ahead of its instant
        await until("the claim to be held", silent.holding.is_set)
        await asyncio.sleep(0.1)  # the loop's clock past its instant, where its start waits
        now[0] = T0 + minute - timedelta(seconds=0.05)
        d.fire(JOB, T0 + minute)
        silent.release(lands=True, answers=True)
        assert await d.drain(10)
        assert await d.recorder.flush(5)
        await d.shutdown(0)

    asyncio.run(main())
    assert stored(sqlite, T0).status is RunStatus.SUCCEEDED
    assert stored(sqlite, T0 + minute).reason == "ConcurrencyForbid"
