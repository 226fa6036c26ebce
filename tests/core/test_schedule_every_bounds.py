"""``@every`` takes 1s to a year: a longer interval is a mistake, refused where it is written.

``@every 999999999999h`` used to be accepted, and its first slot is past year 9999: a task that
looks scheduled and never runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from reconciler.core.schedule import EverySchedule, ScheduleError, parse_schedule
from reconciler.core.schedule.every import MAX_INTERVAL

YEAR = 365 * 24 * 3600


@pytest.mark.parametrize("expression", ["@every 8760h", "@every 525600m", "@every 31536000s"])
def test_a_year_is_the_longest_interval(expression: str) -> None:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, EverySchedule)
    assert schedule.interval == MAX_INTERVAL == YEAR
    # Epoch-aligned: 57 times 365 days after 1970-01-01, which is 14 leap days short of 57 years.
    assert schedule.next_after(datetime(2026, 7, 1, tzinfo=UTC)) == datetime(
        2026, 12, 18, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("expression", "column"),
    [
        ("@every 999999999999h", 7),
        ("@every 8760h1s", 7),
        ("@every   900000h", 9),
        ("@every 8761h", 7),
    ],
)
def test_a_longer_interval_is_refused_with_the_range(expression: str, column: int) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(expression)
    text = expression.split()[1]
    assert str(caught.value) == (
        f"@every: {text!r} is longer than a year; the interval must be 1s to 8760h"
    )
    assert caught.value.column == column


def test_the_constructor_holds_the_same_bounds() -> None:
    EverySchedule("@every 8760h", ZoneInfo("UTC"), YEAR)
    with pytest.raises(ValueError, match="interval must be 1 to 31536000 seconds, got 31536001"):
        EverySchedule("@every x", ZoneInfo("UTC"), YEAR + 1)
    with pytest.raises(ValueError, match="interval must be 1 to 31536000 seconds, got 0"):
        EverySchedule("@every x", ZoneInfo("UTC"), 0)
