"""A live edit of ``jitterSeconds`` (or of the schedule with it) runs every period once: the
periods that ran before the change do not run again under the new offset, each slot of theirs
the changed job comes to is recorded ``skipped``, reason ``PeriodRan``, and no slot of a later
period is dropped (README: What happens to every slot, Edits).

The pure rule (``RanPeriods``) is played over a schedule of fixed interval: the task ran the
period based at ``b_j`` (slot ``b_j + old``), the edit comes just after, the changed job's
slots are ``b_k + new`` after the edit. ``reconcile.account_for_slots`` moves the last slot
by ``new - old``, as here. Then the real dispatcher, through a reconcile pass over a folder,
with real commands and a fake clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.controller.periods import RanPeriods
from reconciler.core.schedule import jitter_offset
from tests.controller.test_live_edit_slots import KEY, Rig, doc

BASE = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)  # b_j: the base of the period that ran last


def play(interval: int, old: int, new: int, edit_after: float = 0.3) -> tuple[list[int], list[int]]:
    """The periods (their base, in intervals from ``b_j``) the changed job runs and those it
    skips, over its first slots after an edit ``edit_after`` seconds after ``b_j``'s slot."""
    periods = RanPeriods()
    last = BASE + timedelta(seconds=old)  # the slot that ran
    now = last + timedelta(seconds=edit_after)
    periods.changed(KEY, last + timedelta(seconds=new - old), now)
    first = -(-(now - BASE - timedelta(seconds=new)).total_seconds() // interval)
    if BASE + timedelta(seconds=first * interval + new) <= now:
        first += 1
    ran: list[int] = []
    skipped: list[int] = []
    for k in range(int(first), int(first) + 12):
        slot = BASE + timedelta(seconds=k * interval + new)
        (skipped if periods.ran(KEY, slot) else ran).append(k)
    return ran, skipped


@pytest.mark.parametrize(
    ("interval", "old", "new", "skipped"),
    [
        (30, 0, 17, [0]),  # grows, less than the interval: the moved slot itself
        (30, 3, 29, [0]),
        (5, 0, 17, [-3, -2, -1, 0]),  # grows past the interval (the review's reproduction)
        (300, 0, 2913, [-9, -8, -7, -6, -5, -4, -3, -2, -1, 0]),  # */5 min, jitter up to 3600
        (5, 3, 12, [-1, 0]),  # grows by more than the interval, from an offset
    ],
    ids=["grow-short", "grow-short-from-3", "grow-long", "grow-long-minutes", "grow-long-from-3"],
)
def test_a_longer_offset_skips_the_periods_that_ran_and_runs_every_later_one(
    interval: int, old: int, new: int, skipped: list[int]
) -> None:
    """The periods up to the one that ran (base 0) whose new slot is still to come are skipped;
    every later period runs, in order, none dropped."""
    ran, not_run = play(interval, old, new)
    assert not_run == skipped
    assert ran == list(range(1, 1 + len(ran)))  # 1, 2, 3, ...: each later period, once


@pytest.mark.parametrize(
    ("interval", "old", "new"),
    [(30, 17, 3), (5, 17, 3), (300, 2913, 0), (30, 0, 0), (5, 13, 13)],
    ids=["shrink-short", "shrink-long", "shrink-long-minutes", "unchanged-0", "unchanged-13"],
)
def test_a_shorter_or_unchanged_offset_guards_nothing(interval: int, old: int, new: int) -> None:
    """The moved last slot is behind the edit: no slot of the changed job is of a period that
    ran. (The periods whose new slot is already past, a shrink longer than the interval, are
    the catch-up's: its latest runs as a ``catchup``.) Every slot to come runs."""
    ran, skipped = play(interval, old, new)
    assert skipped == []
    assert ran[0] >= 1
    assert ran == list(range(ran[0], ran[0] + len(ran)))


def test_an_edit_later_in_the_period_guards_nothing() -> None:
    """Edited 20 s after a slot at offset 0 of a 30 s schedule, to offset 17: the moved slot
    (13:00:17) is past, the next period (13:00:47) runs."""
    assert play(30, 0, 17, edit_after=20) == (list(range(1, 13)), [])


def test_a_new_schedule_with_a_longer_offset_skips_only_slots_up_to_the_moved_one() -> None:
    """'*/5' seconds at offset 0 ran 13:00:00; edited to '*/7' (no jitter change) nothing is
    guarded; edited to '*/7' with offset 17, the new schedule's slots up to 13:00:17 are not
    run (their base is not after 13:00:00), from 13:00:18 (base 13:00:01) on every one runs."""
    periods = RanPeriods()
    now = BASE + timedelta(seconds=0.3)
    periods.changed(KEY, BASE, now)
    assert not periods.ran(KEY, BASE + timedelta(seconds=7))
    periods.changed(KEY, BASE + timedelta(seconds=17), now)
    slots = [BASE + timedelta(seconds=s) for s in (3, 10, 17, 24, 31)]  # the new job's
    assert [bool(periods.ran(KEY, s)) for s in slots] == [True, True, True, False, False]


def test_a_second_change_or_a_removal_replaces_the_guard() -> None:
    periods = RanPeriods()
    now = BASE + timedelta(seconds=0.3)
    periods.changed(KEY, BASE + timedelta(seconds=17), now)
    assert periods.ran(KEY, BASE + timedelta(seconds=2))
    periods.changed(KEY, BASE + timedelta(seconds=2), now + timedelta(seconds=3))  # shrunk back
    assert not periods.ran(KEY, BASE + timedelta(seconds=7))
    periods.changed(KEY, BASE + timedelta(seconds=17), now)
    periods.forget(KEY)
    assert not periods.ran(KEY, BASE + timedelta(seconds=2))


def test_a_jitter_longer_than_the_interval_skips_the_periods_that_ran_with_records(
    tmp_path: Path,
) -> None:
    """'*/5' seconds ran 12:59:50, :55 and 13:00:00; at 13:00:00.5 jitterSeconds: 20 (offset
    13 for this key). The changed job's slots 13:00:03, :08 and :13 are the periods of those
    three: each is recorded skipped, PeriodRan; 13:00:18 (the period of 13:00:05) and later
    ones run."""
    offset = jitter_offset(KEY, 20)
    assert offset == 13

    async def main() -> list[tuple[str, int, str, str, str | None]]:
        rig = Rig(tmp_path, BASE - timedelta(seconds=12))  # 12:59:48
        rig.write(doc("*/5 * * * * *"))
        for count, seconds in enumerate((-10, -5, 0), start=1):
            await _ended(rig, seconds, count)
        rig.at(BASE + timedelta(seconds=0.5))
        rig.write(doc("*/5 * * * * *", extra="  jitterSeconds: 20\n"))
        for count, seconds in enumerate((3, 8, 13, 18, 23), start=4):
            await _ended(rig, seconds, count)
        assert await rig.dispatcher.drain(5)
        await rig.dispatcher.shutdown(0)
        messages = [r.message for r in rig.ended if r.reason == "PeriodRan"]
        assert len(messages) == 3
        assert all(m is not None and "2026-11-26T13:00:13Z" in m for m in messages), messages
        return rig.records()

    assert asyncio.run(main()) == [
        ("12:59:50", 1, "schedule", "succeeded", None),
        ("12:59:55", 1, "schedule", "succeeded", None),
        ("13:00:00", 1, "schedule", "succeeded", None),
        ("13:00:03", 1, "schedule", "skipped", "PeriodRan"),
        ("13:00:08", 1, "schedule", "skipped", "PeriodRan"),
        ("13:00:13", 1, "schedule", "skipped", "PeriodRan"),
        ("13:00:18", 1, "schedule", "succeeded", None),
        ("13:00:23", 1, "schedule", "succeeded", None),
    ]


async def _ended(rig: Rig, seconds: float, count: int) -> None:
    """The clock moves to 13:00:00 plus ``seconds`` (the scheduler fires what is due); then
    ``count`` records in all have ended, and nothing is left going."""
    rig.at(BASE + timedelta(seconds=seconds))
    await rig.until(f"{count} records at {seconds} s", lambda: len(rig.ended) == count)
    assert await rig.dispatcher.drain(5)
