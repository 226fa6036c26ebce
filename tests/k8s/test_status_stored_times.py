"""Stored status times anyone with access to ``/status`` can write, and the API server accepts:
one that UTC cannot hold (past year 9999, or before year 1, once its offset is applied), or one
far in the future, is no time crontask keeps. Kept, the first made every status write of its
object raise (``OverflowError``), so its status froze and no run-now on it was ever started;
the second stuck for ever, as run times only move forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from reconciler.core.status import (
    FUTURE_MARGIN,
    RunSummary,
    StatusInputs,
    TaskState,
    derive_status,
    parse_time,
    rfc3339,
)

NOW = datetime(2027, 1, 1, 12, 0, 0, tzinfo=UTC)
SEEN = datetime(2027, 1, 1, 11, 0, 0, tzinfo=UTC)
FIELDS = ("lastScheduleTime", "lastSuccessfulTime", "lastFailureTime")
SCHEDULED = TaskState(scheduled=True, describe="* * * * * * (UTC)")

PAST_9999 = "9999-12-31T23:00:00-05:00"  # 10000-01-01T04:00:00Z
BEFORE_YEAR_1 = "0001-01-01T00:00:00+01:00"  # 0000-12-31T23:00:00Z
FAR_FUTURE = "9999-12-31T23:59:59Z"


def derive(stored: dict[str, Any], seen: datetime | None) -> dict[str, Any]:
    runs = RunSummary(last_schedule=seen, last_success=seen, last_failure=seen)
    inputs = StatusInputs(1, SCHEDULED, runs, next_run=NOW + timedelta(seconds=1))
    return derive_status(stored, inputs, NOW)


@pytest.mark.parametrize("stored", [PAST_9999, BEFORE_YEAR_1, FAR_FUTURE])
def test_a_stored_time_it_cannot_keep_gives_way_to_what_crontask_saw(stored: str) -> None:
    status = derive(dict.fromkeys(FIELDS, stored), SEEN)
    assert {f: status[f] for f in FIELDS} == dict.fromkeys(FIELDS, "2027-01-01T11:00:00Z")
    assert status["nextScheduleTime"] == "2027-01-01T12:00:01Z"


@pytest.mark.parametrize("stored", [PAST_9999, BEFORE_YEAR_1, FAR_FUTURE])
def test_a_stored_time_it_cannot_keep_is_removed_when_crontask_saw_none(stored: str) -> None:
    # After a restart crontask knows no run yet: the field goes, and comes back with one.
    status = derive(dict.fromkeys(FIELDS, stored), None)
    assert not set(FIELDS) & set(status)


def test_a_stored_time_a_little_ahead_is_kept() -> None:
    # Another replica's clock, or the API server's (a Job's completion), may run ahead of ours.
    ahead = NOW + FUTURE_MARGIN - timedelta(seconds=1)
    status = derive(dict.fromkeys(FIELDS, rfc3339(ahead)), SEEN)
    assert {f: status[f] for f in FIELDS} == dict.fromkeys(FIELDS, rfc3339(ahead))


def test_a_stored_time_with_an_offset_is_kept_in_utc() -> None:
    status = derive(dict.fromkeys(FIELDS, "2027-01-01T12:30:00+02:00"), SEEN)
    assert {f: status[f] for f in FIELDS} == dict.fromkeys(FIELDS, "2027-01-01T11:00:00Z")
    status = derive(dict.fromkeys(FIELDS, "2027-01-01T13:30:00+02:00"), SEEN)
    assert {f: status[f] for f in FIELDS} == dict.fromkeys(FIELDS, "2027-01-01T11:30:00Z")


def test_the_earliest_time_is_written_as_rfc3339() -> None:
    # Year 1 in UTC is a time the API server takes; "1-01-01T00:00:00Z" would be refused.
    status = derive(dict.fromkeys(FIELDS, "0001-01-01T00:00:00Z"), None)
    assert {f: status[f] for f in FIELDS} == dict.fromkeys(FIELDS, "0001-01-01T00:00:00Z")


def test_parse_time_gives_utc_or_nothing() -> None:
    assert parse_time(PAST_9999) is None
    assert parse_time(BEFORE_YEAR_1) is None
    parsed = parse_time("2027-01-01T13:30:00+02:00")
    assert parsed == datetime(2027, 1, 1, 11, 30, tzinfo=UTC)
    assert parsed is not None
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("at", "text"),
    [
        (datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))), "9999-12-31T23:59:59Z"),
        (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))), "0001-01-01T00:00:00Z"),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),
        (datetime(999, 5, 6, 7, 8, 9, 500, tzinfo=UTC), "0999-05-06T07:08:09Z"),
        (datetime(2027, 1, 1, 13, 30, tzinfo=timezone(timedelta(hours=2))), "2027-01-01T11:30:00Z"),
    ],
)
def test_rfc3339_never_raises(at: datetime, text: str) -> None:
    assert rfc3339(at) == text
