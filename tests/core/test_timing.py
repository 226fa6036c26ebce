"""Table tests for slot accounting and retry timing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.core.model import RetryPolicy
from reconciler.core.schedule import parse_schedule
from reconciler.core.schedule.cron import CronSchedule
from reconciler.core.timing import COUNTED, Backlog, backlog, retry_delay


def at(hour: int, minute: int = 0, day: int = 26) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "after", "until", "expected"),
    [
        # Down for less than one slot: nothing missed.
        ("0 * * * *", at(10), at(10, 59), Backlog(None, 0, None)),
        # One slot missed: it may run.
        ("0 * * * *", at(10), at(11, 30), Backlog(at(11), 0, None)),
        # Five missed: the latest may run, four are superseded (named by the newest of them).
        ("0 * * * *", at(10), at(15, 30), Backlog(at(15), 4, at(14))),
        # A slot exactly at `until` counts; one exactly at `after` does not.
        ("*/30 * * * *", at(10), at(11), Backlog(at(11), 1, at(10, 30))),
        # Days of downtime with a daily task in Berlin: one run, the rest counted.
        (
            "30 2 * * *",
            at(0, day=20),
            at(12, day=26),
            Backlog(at(1, 30, day=26), 6, at(1, 30, day=25)),
        ),
    ],
)
def test_backlog(schedule: str, after: datetime, until: datetime, expected: Backlog) -> None:
    zone = "Europe/Berlin" if schedule == "30 2 * * *" else "UTC"
    got = backlog(parse_schedule(schedule, zone), after, until)
    assert (got.latest, got.superseded, got.last_superseded) == (
        expected.latest,
        expected.superseded,
        expected.last_superseded,
    )


def test_backlog_of_a_long_outage_at_one_second_is_counted_not_listed() -> None:
    got = backlog(parse_schedule("@every 1s"), at(0, day=1), at(0, day=26))
    assert got.superseded == 25 * 86400 - 1
    assert got.latest == at(0, day=26)
    assert got.last_superseded == at(0, day=26) - timedelta(seconds=1)


@pytest.mark.parametrize(
    ("policy", "delays"),
    [
        (RetryPolicy(limit=3, backoffSeconds=10), [10, 20, 40]),
        (RetryPolicy(limit=3, backoffSeconds=10, backoffMultiplier=1), [10, 10, 10]),
        (
            RetryPolicy(limit=4, backoffSeconds=5, backoffMultiplier=3, maxBackoffSeconds=60),
            [5, 15, 45, 60],
        ),
        (RetryPolicy(limit=2, backoffSeconds=0), [0, 0]),
        # Without maxBackoffSeconds a delay still stops at a day (the most it may say): the
        # twelfth would be 60 s times 10 to the 11th.
        (
            RetryPolicy(limit=12, backoffSeconds=60, backoffMultiplier=10),
            [60, 600, 6000, 60000, *[86400] * 8],
        ),
        (RetryPolicy(limit=100, backoffSeconds=86400, backoffMultiplier=10), [86400] * 100),
    ],
)
def test_retry_delay(policy: RetryPolicy, delays: list[float]) -> None:
    assert [retry_delay(policy, n) for n in range(1, policy.limit + 1)] == delays


class Stepped(CronSchedule):
    """A cron schedule that counts the fire instants it walks through."""

    def __init__(self, expression: str) -> None:
        parsed = parse_schedule(expression)
        assert isinstance(parsed, CronSchedule)
        super().__init__(parsed.expression, parsed.zone, parsed.spec, parsed.offset)
        self.steps = 0

    def _fire_seconds(self, first: int) -> Iterator[int]:
        for u in super()._fire_seconds(first):
            self.steps += 1
            yield u


def test_a_year_down_at_one_second_costs_no_more_than_a_short_outage() -> None:
    # 31 million missed slots of a per-second cron task: walking them all took 17 s per task.
    schedule = Stepped("* * * * * *")
    got = backlog(schedule, at(0, day=1) - timedelta(days=365), at(0, day=1))
    assert (got.latest, got.last_superseded) == (at(0, day=1), at(0, day=1) - timedelta(seconds=1))
    assert (got.superseded, got.more) == (COUNTED, True)  # "more than 10000 slots"
    assert schedule.steps <= COUNTED + 2 * 60 + 2  # the count, then the last minute, twice


@pytest.mark.parametrize("seconds", [COUNTED, COUNTED + 1, COUNTED + 2])
def test_older_slots_are_counted_exactly_up_to_the_bound(seconds: int) -> None:
    got = backlog(parse_schedule("* * * * * *"), at(0), at(0) + timedelta(seconds=seconds))
    superseded = seconds - 1  # the latest may run
    assert (got.superseded, got.more) == (min(superseded, COUNTED), superseded > COUNTED)


# The reference walks every slot, so the dense schedules get shorter spans.
AGREEING = [
    *[("* * * * * *", "UTC", days) for days in (0.001, 0.1, 0.2)],  # up to 17 280 slots
    *[("*/7 * * * * *", "Europe/Berlin", days) for days in (0.5, 3)],
    *[("30 2 * * *", "Europe/Berlin", days) for days in (0.5, 3, 40, 400, 3000)],
    *[("0 0 29 2 *", "UTC", days) for days in (3, 400, 3000)],
    *[("0 0 1 1 *", "Australia/Lord_Howe", days) for days in (3, 400, 3000)],
    *[("@every 97s", "UTC", days) for days in (0.001, 3, 400)],  # counted exactly, always
    *[("@every 36h", "America/New_York", days) for days in (0.5, 40, 3000)],
]


@pytest.mark.parametrize(("expression", "zone", "days"), AGREEING)
def test_backlog_agrees_with_walking_every_slot(expression: str, zone: str, days: float) -> None:
    schedule = parse_schedule(expression, zone)
    counted = expression.startswith("@every") or None
    for start in (datetime(2026, 3, 20, 7, 3, 5, tzinfo=UTC), datetime(2026, 10, 20, tzinfo=UTC)):
        until = start + timedelta(days=days)
        count, latest = schedule.count_between(start, until)  # the walk, as a reference
        got = backlog(schedule, start, until)
        assert got.latest == latest
        if count <= 1:
            assert (got.superseded, got.last_superseded) == (0, None)
            continue
        assert latest is not None
        _, newest_older = schedule.count_between(start, latest - timedelta(microseconds=1))
        assert got.last_superseded == newest_older
        exact = counted or count - 1 <= COUNTED
        expected = (count - 1, False) if exact else (COUNTED, True)
        assert (got.superseded, got.more) == expected
