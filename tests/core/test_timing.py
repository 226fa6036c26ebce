"""Table tests for slot accounting and retry timing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.core.model import RetryPolicy
from reconciler.core.schedule import parse_schedule
from reconciler.core.timing import Backlog, backlog, retry_delay


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
        (RetryPolicy(limit=3, backoff_seconds=10), [10, 20, 40]),
        (RetryPolicy(limit=3, backoff_seconds=10, backoff_multiplier=1), [10, 10, 10]),
        (
            RetryPolicy(limit=4, backoff_seconds=5, backoff_multiplier=3, max_backoff_seconds=60),
            [5, 15, 45, 60],
        ),
        (RetryPolicy(limit=2, backoff_seconds=0), [0, 0]),
    ],
)
def test_retry_delay(policy: RetryPolicy, delays: list[float]) -> None:
    assert [retry_delay(policy, n) for n in range(1, policy.limit + 1)] == delays
