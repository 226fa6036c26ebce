"""Run ids and missed slots across a fall-back: the two occurrences of a repeated wall time are
two slots, with two ids; and a manual run never takes a scheduled slot's id.

Europe/Berlin, 2026-10-25: clocks go back at 01:00Z (03:00+02 -> 02:00+01), so 02:30 happens at
00:30Z (fold 0) and again at 01:30Z (fold 1). Python compares two datetimes of one zone by wall
time, ignoring ``fold``: the two are ``==`` and hash alike.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from reconciler.api.params import RUN_ID_PATTERN
from reconciler.controller.slots import SlotLedger
from reconciler.core.runs import manual_slot, run_id
from tests.helpers import definition

BERLIN = ZoneInfo("Europe/Berlin")
FIRST = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN)  # 00:30Z
SECOND = FIRST.replace(fold=1)  # 01:30Z


def test_the_two_occurrences_of_a_repeated_wall_time_are_two_ids() -> None:
    assert FIRST == SECOND  # the trap: one key for a cache that does not look at fold
    # Each order: whichever comes first must not lend its id to the other.
    for first, second in ((FIRST, SECOND), (SECOND.replace(minute=31), FIRST.replace(minute=31))):
        ids = (run_id("ops/backup", first), run_id("ops/backup", second))
        assert ids == tuple(run_id("ops/backup", at.astimezone(UTC)) for at in (first, second)), ids
        assert ids[0] != ids[1]
    assert run_id("ops/backup", FIRST) == "ops.backup.20261025T003000Z"
    assert run_id("ops/backup", SECOND) == "ops.backup.20261025T013000Z"


def test_a_catch_up_over_the_repeated_hour_hands_out_both_slots_in_utc() -> None:
    ledger = SlotLedger()
    task = definition("job", command={"args": ["true"]}, schedule="30 * * * *", timeZone=BERLIN.key)
    anchor = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)  # 01:30+02, the last slot that ran
    until = datetime(2026, 10, 25, 1, 45, tzinfo=UTC)  # 02:45+01, back up
    missed = ledger.catch_up(task, anchor, until)
    superseded = missed.superseded
    assert superseded is not None
    assert missed.latest is not None
    # The second 02:30 may run; the first is the one superseded slot and names its skip.
    assert (missed.latest, superseded.name, superseded.count) == (
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        1,
    )
    # In UTC: records are UTC, and run ids and comparisons made from these are fold-proof.
    for at in (missed.latest, superseded.name, superseded.after, superseded.latest):
        assert at.tzinfo is UTC
    assert run_id(task.key, missed.latest) != run_id(task.key, superseded.name)


def test_a_late_hand_off_over_the_repeated_hour_names_its_skip_in_utc() -> None:
    ledger = SlotLedger()
    task = definition("job", command={"args": ["true"]}, schedule="30 * * * *", timeZone=BERLIN.key)
    ledger.track(task.key, datetime(2026, 10, 24, 23, 30, tzinfo=UTC))
    jumped = ledger.handed(task, SECOND)  # the first 02:30 was jumped over
    assert jumped is not None
    assert (jumped.count, jumped.name, jumped.latest) == (
        1,
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
    )
    assert jumped.name.tzinfo is UTC
    assert jumped.latest.tzinfo is UTC
    # The second 02:30 is behind the ledger now: handing the first over again jumps nothing.
    assert ledger.handed(task, FIRST) is None
    assert ledger.last_slot(task.key) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_a_manual_run_at_a_whole_second_does_not_take_the_slot_id_of_that_second() -> None:
    whole = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    slot = manual_slot(whole)
    assert slot - whole == timedelta(microseconds=1)
    assert run_id("ops/backup", slot) != run_id("ops/backup", whole)
    # The id keeps the one shape ids have always had (the API and the CLI check it).
    assert run_id("ops/backup", slot) == "ops.backup.20261127T010000.000001Z"
    assert re.fullmatch(RUN_ID_PATTERN, run_id("ops/backup", slot))
    # Any other reading is the slot itself, as before.
    reading = whole + timedelta(microseconds=250_000)
    assert manual_slot(reading) is reading
    assert run_id("ops/backup", reading) == "ops.backup.20261127T010000.250000Z"
