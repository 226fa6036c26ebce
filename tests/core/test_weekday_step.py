"""Day-of-week ``N/step`` runs to Saturday (6), as a Kubernetes CronJob reads it (robfig/cron
v3: weekdays 0-6, ``N/step`` is ``N-6/step``), not to 7, which would add Sunday a second time.
``7`` stays Sunday as a value and as the end of an explicit range."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.core.schedule import parse_schedule
from reconciler.core.schedule.fields import parse_cron


@pytest.mark.parametrize(
    ("field", "weekdays"),
    [
        ("3/2", (3, 5)),  # Wed, Fri (was Sun, Wed, Fri)
        ("5/1", (5, 6)),  # Fri, Sat (was Sun, Fri, Sat)
        ("1/2", (1, 3, 5)),  # Mon, Wed, Fri (was Sun too)
        ("4/3", (4,)),  # Thu (was Sun too)
        ("wed/2", (3, 5)),  # a name as the start reads the same
        ("sun/2", (0, 2, 4, 6)),
        ("0/1", (0, 1, 2, 3, 4, 5, 6)),
        ("6/1", (6,)),
        ("7/2", (0,)),  # Sunday alone, as before (a CronJob refuses 7)
        # Unchanged: the star, explicit ranges, values.
        ("*/2", (0, 2, 4, 6)),
        ("*/7", (0,)),
        ("5-7", (0, 5, 6)),
        ("1-7/2", (0, 1, 3, 5)),  # an explicit range to 7 still includes Sunday
        ("fri-sun", (0, 5, 6)),
        ("7", (0,)),
        ("0", (0,)),
    ],
)
def test_weekday_steps(field: str, weekdays: tuple[int, ...]) -> None:
    assert parse_cron(f"0 0 * * {field}").weekdays == weekdays


@pytest.mark.parametrize(
    ("expression", "days"),
    [
        # 2026-03-01 is a Sunday.
        ("0 0 * * 3/2", ["2026-03-04", "2026-03-06", "2026-03-11", "2026-03-13"]),
        ("0 0 * * 5/1", ["2026-03-06", "2026-03-07", "2026-03-13", "2026-03-14"]),
    ],
)
def test_weekday_step_fires_as_a_cronjob(expression: str, days: list[str]) -> None:
    fires = parse_schedule(expression).fire_times(datetime(2026, 3, 1, tzinfo=UTC), len(days))
    assert [at.date().isoformat() for at in fires] == days


def test_other_fields_still_step_to_their_maximum() -> None:
    spec = parse_cron("50/5 22/1 28/2 10/1 *")
    assert (spec.minutes, spec.hours, spec.days, spec.months) == (
        (50, 55),
        (22, 23),
        (28, 30),
        (10, 11, 12),
    )
