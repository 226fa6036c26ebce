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

from reconciler.controller.periods import RanPeriods, moved_back
from reconciler.controller.slots import Superseded
from reconciler.core.schedule import jitter_offset, parse_schedule
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


@pytest.mark.parametrize(
    ("old", "new", "edit_after", "recorded"),
    [
        (4, 1, 0.3, None),  # shrinks by less than the interval: no slot moved behind
        (13, 0, 0.5, (1, "13:00:05", "13:00:10")),  # by more: 13:00:05, 13:00:10 the catch-up
        (13, 0, 3.0, (2, "13:00:10", "13:00:15")),  # edited later: 13:00:15 is the catch-up
        (29, 0, 0.5, (4, "13:00:20", "13:00:25")),  # 13:00:05 to :20, then :25
        (0, 0, 0.5, None),  # unchanged (a schedule edit moves nothing)
        (0, 13, 0.5, None),  # grows: the guard's
    ],
    ids=["short", "long", "long-edited-later", "longer", "unchanged", "grows"],
)
def test_a_shorter_offset_records_the_periods_it_moved_behind_the_change(
    old: int, new: int, edit_after: float, recorded: tuple[int, str, str] | None
) -> None:
    """'*/5' seconds ran 13:00:00 plus the old offset; the new offset is shorter. The changed
    job's slots from the moved last slot to the old one are of later periods, which have not
    run: the latest missed one runs as the catch-up, the others are one counted skip."""
    schedule = parse_schedule("*/5 * * * * *", "UTC").with_offset(new)
    last = BASE + timedelta(seconds=old)
    until = last + timedelta(seconds=edit_after)
    anchor = BASE + timedelta(seconds=new)
    # The catch-up's slot: the changed job's latest slot after the moved one, up to the edit.
    due = [t for t in (BASE + timedelta(seconds=s + new) for s in range(5, 60, 5)) if t <= until]
    latest = due[-1] if due and due[-1] > anchor else None
    moved = moved_back(schedule, last, anchor, until, latest)
    if recorded is None:
        assert moved is None
        return
    count, name, catchup = recorded
    assert moved == Superseded(count, anchor, _at(catchup), _at(name))


def _at(hms: str) -> datetime:
    return datetime.combine(BASE.date(), datetime.strptime(hms, "%H:%M:%S").time(), UTC)


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


def test_a_jitter_shorter_by_more_than_the_interval_records_the_periods_it_moved(
    tmp_path: Path,
) -> None:
    """'*/5' seconds with jitterSeconds: 20 (offset 13) ran 13:00:13 (the period of 13:00:00);
    at 13:00:13.5 the jitter goes. The periods of 13:00:05 and 13:00:10 had not run (the old
    offset had them at :18 and :23): 13:00:10 runs as the catch-up, 13:00:05 is recorded
    skipped, Superseded, saying why; 13:00:15 runs."""

    async def main() -> tuple[list[tuple[str, int, str, str, str | None]], str | None]:
        rig = Rig(tmp_path, BASE + timedelta(seconds=0.5))
        rig.write(doc("*/5 * * * * *", extra="  jitterSeconds: 20\n"))
        for count, seconds in enumerate((3, 8, 13), start=1):
            await _ended(rig, seconds, count)
        rig.at(BASE + timedelta(seconds=13.5))
        rig.write(doc("*/5 * * * * *"))
        await _ended(rig, 13.5, 5)  # the skip and the catch-up
        await _ended(rig, 15, 6)
        await rig.dispatcher.shutdown(0)
        skip = next(r for r in rig.ended if r.reason == "Superseded")
        return rig.records(), skip.message

    records, message = asyncio.run(main())
    assert records == [
        ("13:00:03", 1, "schedule", "succeeded", None),
        ("13:00:05", 1, "schedule", "skipped", "Superseded"),
        ("13:00:08", 1, "schedule", "succeeded", None),
        ("13:00:10", 1, "catchup", "succeeded", None),
        ("13:00:13", 1, "schedule", "succeeded", None),
        ("13:00:15", 1, "schedule", "succeeded", None),
    ]
    assert message == (
        "1 slot after 2026-11-26T13:00:00Z and before 2026-11-26T13:00:10Z did not run (a "
        "shorter jitterSeconds moved them before the task changed; their periods had not run); "
        "only the latest missed slot may run"
    )


async def _ended(rig: Rig, seconds: float, count: int) -> None:
    """The clock moves to 13:00:00 plus ``seconds`` (the scheduler fires what is due); then
    ``count`` records in all have ended, and nothing is left going."""
    rig.at(BASE + timedelta(seconds=seconds))
    await rig.until(f"{count} records at {seconds} s", lambda: len(rig.ended) == count)
    assert await rig.dispatcher.drain(5)
