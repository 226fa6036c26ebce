"""@every intervals (epoch-aligned), offsets (jitter) and jitter_offset."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from reconciler.core.schedule import EverySchedule, jitter_offset, parse_schedule


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("@every 1s", utc(2026, 3, 15, 10, 3), ["10:03:01", "10:03:02"]),
        ("@every 30s", utc(2026, 3, 15, 10, 3, 29), ["10:03:30", "10:04:00"]),
        ("@every 5m", utc(2026, 3, 15, 10, 3), ["10:05:00", "10:10:00"]),
        # 2026-03-15T10:03Z is 1773568980 s after the epoch = 4222783 * 420 + 120 (7 minutes
        # is 420 s), so the slots are at :01, :08, :15, ... in this hour, not at multiples of 7.
        ("@every 7m", utc(2026, 3, 15, 10, 3), ["10:08:00", "10:15:00", "10:22:00"]),
        ("@every 90s", utc(2026, 3, 15, 10, 3), ["10:04:30", "10:06:00"]),
        ("@every 1h30m", utc(2026, 3, 15, 10, 3), ["10:30:00", "12:00:00", "13:30:00"]),
        ("@every 2h", utc(2026, 3, 15, 10, 3), ["12:00:00", "14:00:00"]),
    ],
)
def test_aligned_to_the_epoch(expression: str, after: datetime, expected: list[str]) -> None:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, EverySchedule)
    fires = schedule.fire_times(after, len(expected))
    assert [fire.time().isoformat() for fire in fires] == expected
    for fire in fires:
        assert int(fire.timestamp()) % schedule.interval == 0


def test_strictly_after_and_sub_second_arguments() -> None:
    schedule = parse_schedule("@every 30s")
    assert schedule.next_after(utc(2026, 3, 15, 10, 3, 30)) == utc(2026, 3, 15, 10, 4)
    just_before = utc(2026, 3, 15, 10, 3, 29) + timedelta(microseconds=999_999)
    assert schedule.next_after(just_before) == utc(2026, 3, 15, 10, 3, 30)
    assert schedule.next_after(utc(1969, 12, 31, 23, 59, 59)) == utc(1970, 1, 1)


def test_time_zone_does_not_move_the_instants() -> None:
    after = utc(2026, 10, 24, 23, 17, 5)
    in_utc = parse_schedule("@every 25m").fire_times(after, 10)
    berlin = parse_schedule("@every 25m", "Europe/Berlin")
    in_berlin = berlin.fire_times(after, 10)
    # Same instants. (Compared as timestamps: Python's == between zones is always False for a
    # wall time that occurs twice, such as 02:10 in Berlin on this day.)
    assert [f.timestamp() for f in in_berlin] == [f.timestamp() for f in in_utc]
    assert all(fire.tzinfo is ZoneInfo("Europe/Berlin") for fire in in_berlin)
    assert in_berlin[0].isoformat() == "2026-10-25T01:20:00+02:00"  # 23:20Z, a multiple of 1500 s


def test_hourly_interval_across_fall_back_fires_every_elapsed_hour() -> None:
    schedule = parse_schedule("@every 1h", "Europe/Berlin")
    fires = schedule.fire_times(utc(2026, 10, 24, 23, 30), 4)
    assert [fire.isoformat() for fire in fires] == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
        "2026-10-25T04:00:00+01:00",
    ]


def test_count_between_is_constant_time() -> None:
    schedule = parse_schedule("@every 1s", "Europe/Berlin")
    count, latest = schedule.count_between(utc(2026, 3, 1), utc(2026, 4, 30))
    assert count == 60 * 86_400
    assert latest == utc(2026, 4, 30)
    assert latest is not None
    assert latest.tzinfo is ZoneInfo("Europe/Berlin")
    # Three thousand years of seconds: only arithmetic can answer this.
    count, latest = schedule.count_between(utc(1000, 1, 1), utc(4000, 1, 1))
    assert count == (utc(4000, 1, 1) - utc(1000, 1, 1)) // timedelta(seconds=1)
    assert latest == utc(4000, 1, 1)


@pytest.mark.parametrize(
    ("after", "until", "expected"),
    [
        (utc(2026, 3, 1, 0, 0), utc(2026, 3, 1, 0, 10), (2, utc(2026, 3, 1, 0, 10))),
        (utc(2026, 3, 1, 0, 0), utc(2026, 3, 1, 0, 9, 59), (1, utc(2026, 3, 1, 0, 5))),
        (utc(2026, 3, 1, 0, 1), utc(2026, 3, 1, 0, 4), (0, None)),
        (utc(2026, 3, 1, 0, 5), utc(2026, 3, 1, 0, 5), (0, None)),
        (utc(2026, 3, 1, 0, 10), utc(2026, 3, 1, 0, 0), (0, None)),
        (
            utc(2026, 3, 1, 0, 4, 59) + timedelta(microseconds=999_999),
            utc(2026, 3, 1, 0, 5),
            (1, utc(2026, 3, 1, 0, 5)),
        ),
    ],
)
def test_count_between_bounds(
    after: datetime, until: datetime, expected: tuple[int, datetime | None]
) -> None:
    schedule = parse_schedule("@every 5m")
    assert schedule.count_between(after, until) == expected
    # The same answer as iterating.
    fires = [f for f in schedule.fire_times(after, 10) if f <= until]
    assert expected == (len(fires), fires[-1] if fires else None)


def test_every_with_offset() -> None:
    schedule = parse_schedule("@every 5m").with_offset(7)
    assert schedule.offset == 7
    fires = schedule.fire_times(utc(2026, 3, 1, 0, 0, 7), 3)
    assert [fire.time().isoformat() for fire in fires] == ["00:05:07", "00:10:07", "00:15:07"]
    assert schedule.count_between(utc(2026, 3, 1), utc(2026, 3, 1, 1)) == (
        12,
        utc(2026, 3, 1, 0, 55, 7),
    )
    assert schedule.describe() == "every 5 minutes, delayed by 7 seconds"


def test_cron_with_offset() -> None:
    base = parse_schedule("30 2 * * *", "Europe/Berlin")
    shifted = base.with_offset(90)
    assert shifted.expression == base.expression
    assert shifted.zone is base.zone
    after = utc(2026, 3, 27)
    assert [fire.isoformat() for fire in shifted.fire_times(after, 3)] == [
        "2026-03-27T02:31:30+01:00",
        "2026-03-28T02:31:30+01:00",
        "2026-03-29T03:01:30+02:00",  # the DST jump instant, 90 s later
    ]
    for plain, late in zip(base.fire_times(after, 20), shifted.fire_times(after, 20), strict=True):
        assert late - plain == timedelta(seconds=90)
    # Offsets add up, and the original is unchanged.
    assert shifted.with_offset(10).offset == 100
    assert base.offset == 0
    assert shifted.describe() == "at 02:30 every day, delayed by 1 minute 30 seconds"
    # The slot at 02:30 fires at 02:31:30, so asking from 02:31 still finds it.
    assert shifted.next_after(utc(2026, 3, 27, 1, 31)) == utc(2026, 3, 27, 1, 31, 30)
    with pytest.raises(ValueError, match="must not be negative"):
        base.with_offset(-1)


def test_jitter_is_stable_and_in_range() -> None:
    # Fixed values: the offset must not change between releases, processes or hosts.
    assert jitter_offset("ops/nightly-backup", 300) == 203
    assert jitter_offset("ops/nightly-backup", 3600) == 1797
    assert jitter_offset("ops/nightly-backup", 0) == 0
    digest = hashlib.sha256(b"ops/nightly-backup").digest()
    assert jitter_offset("ops/nightly-backup", 300) == int.from_bytes(digest[:16], "big") % 301
    values = [jitter_offset(f"team/task-{i}", 9) for i in range(1000)]
    assert set(values) == set(range(10))  # [0, max] inclusive, and spread
    assert all(0 <= jitter_offset(f"k{i}", 59) <= 59 for i in range(500))
    with pytest.raises(ValueError, match="must not be negative"):
        jitter_offset("ops/x", -1)


def test_jitter_is_the_same_in_another_process() -> None:
    code = (
        "from reconciler.core.schedule import jitter_offset;"
        "print(jitter_offset('ops/nightly-backup', 300))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == str(jitter_offset("ops/nightly-backup", 300))
