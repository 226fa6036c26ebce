"""``Schedule.latest_two`` finds the latest two slots by lookups near ``until``, never by
walking every slot since ``after``: checked against the plain forward walk for every kind of
schedule, and counted (lookups and slots stepped through, never timed) where the last months
hold no slot but the months before hold millions."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import reconciler.core.schedule.base as base
from reconciler.core.schedule import Schedule, parse_schedule
from reconciler.core.timing import backlog


class _Counted(Schedule):
    """A schedule that counts its lookups (``_fire_seconds`` calls) and the slots they step
    through, and stops the test once it has stepped through more than ``most`` slots (the
    walk this replaced went through 15 million of them, for seconds)."""

    def __init__(self, inner: Schedule, most: int = 100_000) -> None:
        super().__init__(inner.expression, inner.zone, inner.offset)
        self.inner = inner
        self.most = most
        self.lookups = 0
        self.slots = 0

    def _fire_seconds(self, first: int) -> Iterator[int]:
        self.lookups += 1
        for u in self.inner._fire_seconds(first):
            self.slots += 1
            if self.slots > self.most:
                raise AssertionError(f"stepped through more than {self.most} slots")
            yield u

    def describe(self) -> str:
        return self.inner.describe()

    def with_offset(self, seconds: int) -> Schedule:
        return _Counted(self.inner.with_offset(seconds), self.most)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _seconds(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp())


# --- the sparse case: counted -------------------------------------------------------------


SPARSE = [
    # Every second of January to June, seen at the end of the next year: the reviewer's case
    # (the last 182 days hold no slot; the walk from `after` went through 15.6 million).
    ("* * * * 1-6 *", "UTC", utc(2025, 6, 30, 23), utc(2026, 12, 31), utc(2026, 6, 30, 23, 59, 59)),
    # The same in a zone with DST, jittered by 17 s.
    (
        "* * * * 1-6 *",
        "Europe/Berlin",
        utc(2025, 6, 30, 23),
        utc(2026, 12, 31),
        utc(2026, 6, 30, 21, 59, 59) + timedelta(seconds=17),
    ),
    # Every second of January, looked back over 17 years (the /metrics lookback was that).
    ("* * * * 1 *", "UTC", utc(2009, 1, 1), utc(2026, 12, 31), utc(2026, 1, 31, 23, 59, 59)),
    # Every second of February 29, from a leap day to the December before the next one.
    ("* * * 29 2 *", "UTC", utc(2024, 2, 28), utc(2027, 12, 31), utc(2024, 2, 29, 23, 59, 59)),
]


@pytest.mark.parametrize(("expression", "zone", "after", "until", "latest"), SPARSE)
def test_a_gap_after_millions_of_slots_costs_lookups_not_the_slots(
    expression: str, zone: str, after: datetime, until: datetime, latest: datetime
) -> None:
    parsed = parse_schedule(expression, zone)
    offset = 17 if zone != "UTC" else 0
    schedule = _Counted(parsed.with_offset(offset) if offset else parsed)
    got = schedule.latest_two(after, until)
    expected = int(latest.timestamp())
    assert [_seconds(at) for at in got] == [expected, expected - 1]
    assert schedule.lookups < 200
    assert schedule.slots < 1_000


def test_a_backlog_over_the_gap_is_cheap_too() -> None:
    # The path of a restart after the gap (controller/slots.py): backlog counts at most 10 000
    # of the older slots, and finds the latest two first.
    schedule = _Counted(parse_schedule("* * * * 1-6 *"))
    got = backlog(schedule, utc(2025, 6, 30, 23), utc(2026, 12, 31))
    assert got.latest == utc(2026, 6, 30, 23, 59, 59)
    assert got.last_superseded == utc(2026, 6, 30, 23, 59, 58)
    assert schedule.slots < 20_000


# --- every kind of schedule: against the forward walk --------------------------------------

ORACLE = [
    ("0 0 * * *", "UTC", utc(2026, 1, 1), 90),
    ("30 2 * * *", "Europe/Berlin", utc(2026, 3, 20), 20),  # fixed: the spring-forward gap
    ("30 2 * * *", "Europe/Berlin", utc(2026, 10, 20), 20),  # fixed: the repeated hour
    ("*/20 * * * *", "Europe/Berlin", utc(2026, 10, 24), 3),  # wildcard: both occurrences
    ("* 2 * * *", "America/New_York", utc(2026, 3, 5), 10),
    ("* 1 * * *", "America/New_York", utc(2026, 10, 28), 10),
    ("*/15 1-3 * * *", "Australia/Lord_Howe", utc(2026, 3, 30), 10),  # a 30-minute DST
    ("*/15 1-3 * * *", "Australia/Lord_Howe", utc(2026, 9, 28), 10),
    ("0 12 * * *", "Pacific/Apia", utc(2011, 12, 25), 10),  # 2011-12-30 never happened there
    ("0 0 L * *", "UTC", utc(2026, 1, 1), 400),
    ("0 0 L-3 * *", "Europe/Paris", utc(2026, 1, 1), 400),
    ("0 12 15W * *", "UTC", utc(2026, 1, 1), 400),
    ("0 18 LW * *", "America/Sao_Paulo", utc(2026, 1, 1), 400),
    ("0 9 * * MON#2", "Europe/London", utc(2026, 1, 1), 400),
    ("30 2 * * SUNL", "Europe/Berlin", utc(2026, 1, 1), 400),
    ("0 0 29 2 *", "UTC", utc(2023, 1, 1), 3000),
    ("0 0 13 * 5", "UTC", utc(2026, 1, 1), 1500),  # either day field: the 13th or a Friday
    ("0 0 */2 * 5", "UTC", utc(2026, 1, 1), 300),  # both: odd-numbered Fridays
    ("*/7 * * * * *", "Europe/Berlin", utc(2026, 3, 29, 0, 30), 0.1),
    ("* * * * 1-6 *", "UTC", utc(2026, 6, 30, 23, 50), 0.02),  # into the gap
    ("0 0 * * 3/2", "UTC", utc(2026, 1, 1), 60),
    ("@every 97s", "UTC", utc(2026, 1, 1), 0.1),
    ("@every 36h", "America/New_York", utc(2026, 1, 1), 60),
    ("@every 8760h", "UTC", utc(2020, 1, 1), 3000),
]


def _walk(schedule: Schedule, after: datetime, days: float) -> list[int]:
    """Every fire instant in ``(after, after + days]``, walked one by one: the reference."""
    first = int(after.timestamp()) + 1
    end = int((after + timedelta(days=days)).timestamp())
    fires: list[int] = []
    for u in schedule._fire_seconds(first):
        if u > end:
            break
        fires.append(u)
    return fires


def _untils(fires: list[int], end: int) -> list[int]:
    """Instants to look back from: on, just before and just after slots spread over the span,
    half-way between two, and the end."""
    chosen = fires[:: max(1, len(fires) // 10)] + fires[-3:]
    between = [(a + b) // 2 for a, b in itertools.pairwise(chosen)]
    near = {*chosen, *(u - 1 for u in chosen), *(u + 1 for u in chosen), *between, end}
    return sorted(u for u in near if u <= end)  # the walk knows nothing later


@pytest.mark.parametrize("walked", [1, None])  # bisecting at once, or as it does
@pytest.mark.parametrize("offset", [0, 3599])
@pytest.mark.parametrize(("expression", "zone", "after", "days"), ORACLE)
def test_latest_two_agrees_with_the_forward_walk(
    expression: str,
    zone: str,
    after: datetime,
    days: float,
    offset: int,
    walked: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if walked is not None:  # (raising=False: the walk before bisection had no such bound)
        monkeypatch.setattr(base, "_WALK", walked, raising=False)
    parsed = parse_schedule(expression, zone)
    schedule = parsed.with_offset(offset) if offset else parsed
    fires = _walk(schedule, after, days)
    assert len(fires) >= 2, "a span that shows nothing"
    end = int((after + timedelta(days=days)).timestamp())
    for last in _untils(fires, end):
        index = bisect.bisect_right(fires, last)
        expected = [
            fires[index - 1] if index >= 1 else None,
            fires[index - 2] if index >= 2 else None,
        ]
        latest, previous = schedule.latest_two(after, datetime.fromtimestamp(last, UTC))
        assert [_seconds(latest), _seconds(previous)] == expected, datetime.fromtimestamp(last, UTC)
        assert all(at is None or at.tzinfo == parsed.zone for at in (latest, previous))
