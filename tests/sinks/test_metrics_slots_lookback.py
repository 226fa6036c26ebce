"""The slot before last of the sparsest cron schedules: a fifth Sunday of February is a Sunday
29 February, 28 years apart and then 40 across 2100 (which is no leap year); the metric is
exported for them too, so the lookback covers two of the longest gaps a cron expression can
have (``reconciler.core.schedule.cron.HORIZON_YEARS``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.core.schedule import parse_schedule
from reconciler.core.schedule.cron import HORIZON_YEARS
from reconciler.sinks.metrics_slots import LOOKBACK, latest_two

YEAR = 365.2425 * 86400


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def ts(year: int, month: int, day: int) -> float:
    return datetime(year, month, day, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("expression", "following", "latest", "before"),
    [
        # the reviewer's cases: the next slots seen in December 2026
        ("0 0 ? 2 0#5", ts(2032, 2, 29), ts(2004, 2, 29), ts(1976, 2, 29)),
        ("0 0 ? 2 MON#5", ts(2044, 2, 29), ts(2016, 2, 29), ts(1988, 2, 29)),
        # two gaps of 40 years back to back cannot be; 40 and 28 across 2100 can
        ("0 0 ? 2 0#5", ts(2156, 2, 29), ts(2128, 2, 29), ts(2088, 2, 29)),
        ("0 0 * 2 0#5", ts(2128, 2, 29), ts(2088, 2, 29), ts(2060, 2, 29)),
    ],
)
@pytest.mark.parametrize("interval", [None, "gap"])
def test_the_slot_before_last_decades_back(
    expression: str, following: float, latest: float, before: float, interval: str | None
) -> None:
    schedule = parse_schedule(expression)
    assert schedule.next_after(datetime.fromtimestamp(latest, UTC)) == _at(following)
    # the scheduler's interval is the gap after the next slot, or none is known
    gap = None if interval is None else following - latest
    assert latest_two(schedule, following, gap) == (latest, before)


def test_the_lookback_covers_two_of_the_longest_gaps() -> None:
    longest = (HORIZON_YEARS - 1) * YEAR  # the horizon is the longest gap and a year
    assert 2 * longest + 2 * 86400 <= LOOKBACK
