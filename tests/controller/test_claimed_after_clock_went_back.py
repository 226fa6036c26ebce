"""A run store holding slots recorded after this host's clock: a crontask whose clock was ahead
ran the task on it, and stopped; this one starts on it with the right clock (NTP stepped the
host back, the pod moved to a node whose clock is right). The store refuses the slots that ran
(none runs twice), and that was warned of as another crontask on the store, which need not
exist. The catch-up reads the task's last slot from the store, as ``runtime`` does at start: if
it is ahead of this host's clock (by more than a crontask whose clock agrees claims ahead), the
refusals of the slots up to it say so. Two crontasks on one store: still their warning
(``test_claimed_by_another_crontask``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.controller.dispatch import Dispatcher
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.core.timing import AHEAD_MAX
from reconciler.store import MemoryRunStore
from tests.controller.test_claimed_by_another_crontask import JOB, WARNED, claimed_by_other, said
from tests.helpers import local_actions

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
