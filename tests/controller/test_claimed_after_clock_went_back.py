"""A run store holding slots recorded after this host's clock: a crontask whose clock was ahead
ran the task on it, and stopped; this one starts on it with the right clock (NTP stepped the
host back, the pod moved to a node whose clock is right). The store refuses the slots that ran
(none runs twice), and that was warned of as another crontask on the store, which need not
exist. The catch-up reads the task's last slot from the store, as ``runtime`` does at start: if
it is ahead of this host's clock (by more than a crontask whose clock agrees claims ahead), the
refusals of the slots up to it say so, and the task's slots are counted from this clock: an
edit, a suspend or a resume inside the window does not take the slots up to it for periods that
ran. Two crontasks on one store: still their warning (``test_claimed_by_another_crontask``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.core.timing import AHEAD_MAX
from reconciler.store import MemoryRunStore
from tests.controller.test_claimed_by_another_crontask import JOB, WARNED, claimed_by_other, said
from tests.controller.test_live_edit_slots import Rig, doc
from tests.helpers import definition, local_actions

KEY = "default/job"
START = datetime(2026, 11, 26, 12, 0, 27, tzinfo=UTC)  # this crontask's start, its clock right
CLOCK = "run store holds records of default/job written after this host's clock"


def ran_by_fast_clock(store: MemoryRunStore, slot: datetime) -> None:
    """The record the crontask whose clock was ahead left of ``slot``: it ran and ended."""
    store.claim(
        RunRecord(
            id=run_id(KEY, slot),
            task=KEY,
            scheduled_at=slot,
            trigger=Trigger.SCHEDULE,
            status=RunStatus.SUCCEEDED,
            started_at=slot,
            finished_at=slot + timedelta(milliseconds=5),
            owner="host:9:fast",
            exit_code=0,
        )
    )


def start_then_fire(
    store: MemoryRunStore,
    started: datetime,
    slots: list[datetime],
    meanwhile: Callable[[datetime], None] = lambda slot: None,
) -> None:
    """A crontask that starts at ``started``, its task's catch-up counting from the last slot
    the store holds, and is handed ``slots``, each on its instant (after ``meanwhile``)."""
    now = [started]

    async def scenario() -> None:
        d = Dispatcher(store, owner="host:1:abc", clock=lambda: now[0], actions=local_actions())
        d.catch_up(JOB, store.last_slots([KEY]).get(KEY), started)
        for slot in slots:
            now[0] = slot
            meanwhile(slot)
            d.fire(JOB, slot)
            assert await d.drain(5)
        await d.shutdown(0)

    asyncio.run(scenario())


def test_slots_recorded_ahead_of_the_clock_are_not_told_as_another_crontask(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The review's run: a */5 s task, the first crontask 40 s fast. The slots it had not
    recorded run; the first it had is refused with the clock's warning, the next with an info
    line; no word of another crontask."""
    store = MemoryRunStore()
    ahead = [
        datetime(2026, 11, 26, 12, 0, 55, tzinfo=UTC),
        datetime(2026, 11, 26, 12, 1, tzinfo=UTC),
    ]
    for slot in ahead:
        ran_by_fast_clock(store, slot)
    free = [START + timedelta(seconds=s) for s in (3, 8)]  # 12:00:30, 12:00:35
    with caplog.at_level(logging.INFO, logger="crontask.runner"):
        start_then_fire(store, START, [*free, *ahead])
    warnings = said(caplog, logging.WARNING)
    assert not [m for m in warnings if m.startswith(WARNED)], warnings
    told = [m for m in warnings if m.startswith(CLOCK)]
    assert told == [
        f"{CLOCK} (up to 2026-11-26T12:01:00Z): the clock went back, or the crontask that wrote"
        " them had a clock ahead; their slots are not run again"
    ], warnings
    assert "slot already recorded by a clock ahead" in said(caplog, logging.INFO)
    assert all(store.get(run_id(KEY, s)).owner == "host:1:abc" for s in free)  # type: ignore[union-attr]
    assert all(store.get(run_id(KEY, s)).owner == "host:9:fast" for s in ahead)  # type: ignore[union-attr]


def test_one_slot_recorded_ahead_is_told_too(caplog: pytest.LogCaptureFixture) -> None:
    """A minutely task, one slot ahead: refused on its instant, when its record is no longer in
    the future. The catch-up found it ahead at the start."""
    store = MemoryRunStore()
    slot = datetime(2026, 11, 26, 12, 1, tzinfo=UTC)
    ran_by_fast_clock(store, slot)
    with caplog.at_level(logging.INFO, logger="crontask.runner"):
        start_then_fire(store, START, [slot])
    warnings = said(caplog, logging.WARNING)
    assert [m for m in warnings if m.startswith(CLOCK)], warnings
    assert not [m for m in warnings if m.startswith(WARNED)], warnings


def test_a_slot_claimed_ahead_by_a_crontask_whose_clock_agrees_is_another_crontask(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A live crontask claims a slot up to AHEAD_MAX before it: a last slot that little ahead
    of this host's clock at the start says nothing of the clock."""
    store = MemoryRunStore()
    slot = datetime(2026, 11, 26, 12, 1, tzinfo=UTC)
    claimed_by_other(store, slot)
    with caplog.at_level(logging.INFO, logger="crontask.runner"):
        start_then_fire(store, slot - timedelta(seconds=AHEAD_MAX), [slot])
    warnings = said(caplog, logging.WARNING)
    assert [m for m in warnings if m.startswith(WARNED)], warnings
    assert not [m for m in warnings if m.startswith(CLOCK)], warnings


def test_another_crontask_past_the_slots_recorded_ahead_is_still_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The clock's warning does not stand for the other's: a slot after those recorded ahead,
    refused, is another crontask's, and warned of, within SHARED_TOLD_EVERY of the first."""
    store = MemoryRunStore()
    ahead = datetime(2026, 11, 26, 12, 1, tzinfo=UTC)
    later = ahead + timedelta(minutes=1)
    ran_by_fast_clock(store, ahead)

    def meanwhile(slot: datetime) -> None:
        if slot == later:  # claimed by the other crontask, started since
            claimed_by_other(store, later)

    with caplog.at_level(logging.INFO, logger="crontask.runner"):
        start_then_fire(store, START, [ahead, later], meanwhile)
    warnings = said(caplog, logging.WARNING)
    assert len([m for m in warnings if m.startswith(CLOCK)]) == 1, warnings
    assert len([m for m in warnings if m.startswith(WARNED)]) == 1, warnings


AHEAD = [datetime(2026, 11, 26, 12, 0, 55, tzinfo=UTC), datetime(2026, 11, 26, 12, 1, tzinfo=UTC)]
FREE = [START + timedelta(seconds=s) for s in (3, 8, 13, 18, 23)]  # 12:00:30 to :50, nobody's
EDITED = definition("job", command={"args": ["true", "edited"]})
SUSPENDED = definition("job", command={"args": ["true"]}, suspend=True)


def start_change_then_fire(store: MemoryRunStore, changes: list[tuple[float, Definition]]) -> None:
    """``start_then_fire`` of FREE and AHEAD, the task changed before them: each change at
    ``START`` plus its seconds, caught up from the ledger's last slot, as
    ``reconcile.account_for_slots`` does for a live edit, suspend or resume."""
    for slot in AHEAD:
        ran_by_fast_clock(store, slot)
    now = [START]

    async def scenario() -> None:
        d = Dispatcher(store, owner="host:1:abc", clock=lambda: now[0], actions=local_actions())
        d.catch_up(JOB, store.last_slots([KEY]).get(KEY), START)
        for seconds, changed in changes:
            now[0] = START + timedelta(seconds=seconds)
            d.catch_up(changed, d.last_slot(KEY), now[0], record_superseded=False)
        for slot in [*FREE, *AHEAD]:
            now[0] = slot
            d.fire(EDITED, slot)
            assert await d.drain(5)
        await d.shutdown(0)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "changes",
    [[(1.0, EDITED)], [(1.0, SUSPENDED), (2.0, EDITED)]],
    ids=["edited", "suspended-resumed"],
)
def test_a_change_inside_the_window_runs_the_slots_nobody_ran(
    changes: list[tuple[float, Definition]],
) -> None:
    """README: a slot in between that no crontask recorded runs on its instant; after an edit,
    or a suspend and resume, too. The ledger's last slot was the store's, ahead: the change
    took every slot up to it for a period that ran here (``periods``), recorded skipped,
    PeriodRan."""
    store = MemoryRunStore()
    start_change_then_fire(store, changes)
    records = [store.get(run_id(KEY, slot)) for slot in FREE]
    assert [(r.status, r.owner) for r in records if r is not None] == [
        (RunStatus.SUCCEEDED, "host:1:abc")
    ] * len(FREE), records
    assert all(store.get(run_id(KEY, s)).owner == "host:9:fast" for s in AHEAD)  # type: ignore[union-attr]


def test_after_a_change_the_slots_recorded_ahead_are_still_told_as_the_clock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The edit's catch-up counts from the ledger's last slot, this clock's, no longer ahead:
    the slots the store holds ahead are still refused as the clock's (kept until a catch-up
    counts from past them), not as another crontask's."""
    store = MemoryRunStore()
    with caplog.at_level(logging.INFO, logger="crontask.runner"):
        start_change_then_fire(store, [(1.0, EDITED)])
    warnings = said(caplog, logging.WARNING)
    assert [m for m in warnings if m.startswith(CLOCK)], warnings
    assert not [m for m in warnings if m.startswith(WARNED)], warnings


def test_resumed_after_the_clock_passed_the_slot_recorded_ahead_its_catch_up_is_the_clocks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A minutely task suspended at the start, its last slot 12:01:00 ahead: it counts from the
    start, 12:00:27. Resumed at 12:01:30, once this clock passed 12:01:00, it catches up
    12:01:00, which the store refuses (it ran): still the clock's refusal, not another
    crontask's, though this clock is past it."""
    minutely = definition("job", schedule="* * * * *", command={"args": ["true"]})
    suspended = definition("job", schedule="* * * * *", command={"args": ["true"]}, suspend=True)
    store = MemoryRunStore()
    ahead = datetime(2026, 11, 26, 12, 1, tzinfo=UTC)
    ran_by_fast_clock(store, ahead)
    now = [START]

    async def scenario() -> None:
        d = Dispatcher(store, owner="host:1:abc", clock=lambda: now[0], actions=local_actions())
        d.catch_up(suspended, store.last_slots([KEY]).get(KEY), START)
        now[0] = ahead + timedelta(seconds=30)
        d.catch_up(minutely, d.last_slot(KEY), now[0], record_superseded=False)
        assert await d.drain(5)
        await d.shutdown(0)

    with caplog.at_level(logging.INFO, logger="crontask.runner"):
        asyncio.run(scenario())
    warnings = said(caplog, logging.WARNING)
    assert [m for m in warnings if m.startswith(CLOCK)], warnings
    assert not [m for m in warnings if m.startswith(WARNED)], warnings
    assert store.get(run_id(KEY, ahead)).owner == "host:9:fast"  # type: ignore[union-attr]


def test_the_ledgers_own_last_slot_ahead_still_guards_the_periods_that_ran(
    tmp_path: Path,
) -> None:
    """Only the store's last slot ahead counts from this clock: the ledger's own, moved ahead by
    a new jitterSeconds (``periods``), stays. '*/5' seconds ran 13:00:00; at 13:00:00.5
    jitterSeconds: 20 (offset 13) moves it to 13:00:13; another edit at 13:00:01 still finds
    it there, so 13:00:03, :08 and :13 (the periods of 12:59:50 to 13:00:00) do not run again."""
    jitter = "  jitterSeconds: 20\n"
    base = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)

    async def main() -> list[tuple[str, int, str, str, str | None]]:
        rig = Rig(tmp_path, base - timedelta(seconds=12))
        rig.write(doc("*/5 * * * * *"))
        for seconds in (-10, -5, 0, 0.5, 1, 3, 8, 13, 18):
            rig.at(base + timedelta(seconds=seconds))
            if seconds == 0.5:
                rig.write(doc("*/5 * * * * *", extra=jitter))
            elif seconds == 1:
                rig.write(doc("*/5 * * * * *", "echo", extra=jitter))
            else:
                assert await rig.dispatcher.drain(5)
        await rig.until("13:00:18 ended", lambda: len(rig.ended) == 7)
        await rig.dispatcher.shutdown(0)
        return rig.records()

    assert [(at, reason) for at, _, _, _, reason in asyncio.run(main())] == [
        ("12:59:50", None),
        ("12:59:55", None),
        ("13:00:00", None),
        ("13:00:03", "PeriodRan"),
        ("13:00:08", "PeriodRan"),
        ("13:00:13", "PeriodRan"),
        ("13:00:18", None),
    ]
