"""``crontask tasks`` shows a row's next and last run in one zone, the task's: the API gives
the next runs in the task's zone and the last run's slot in UTC, and a row of ``+0100`` beside
``+0000`` read as an hour between them that is not there."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.hostile import HostileServer, cli


def task(zone: str | None, next_run: str, last_slot: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"schedule": "0 9 * * *"}
    if zone is not None:
        spec["timeZone"] = zone
    return {
        "key": "ops/a",
        "state": "Ready",
        "resource": {"spec": spec},
        "nextRuns": [next_run],
        "lastRun": {"status": "succeeded", "scheduledTime": last_slot},
    }


@pytest.mark.parametrize(
    ("zone", "next_run", "last_slot", "shown"),
    [
        # Winter and summer in Berlin: the offset is the one of each time, not of now.
        (
            "Europe/Berlin",
            "2026-12-06T09:00:00+01:00",
            "2026-07-05T07:00:00Z",
            ("2026-12-06 09:00:00+0100", "succeeded 2026-07-05 09:00:00+0200"),
        ),
        # No timeZone is UTC (the default): a next run given with an offset is shown in UTC.
        (
            None,
            "2026-12-06T10:00:00+01:00",
            "2026-12-05T09:00:00+00:00",
            ("2026-12-06 09:00:00+0000", "succeeded 2026-12-05 09:00:00+0000"),
        ),
        # A zone this machine does not know, or a path, is never looked up as a file: UTC.
        (
            "../../etc/passwd",
            "2026-12-06T09:00:00Z",
            "2026-12-05T10:00:00+01:00",
            ("2026-12-06 09:00:00+0000", "succeeded 2026-12-05 09:00:00+0000"),
        ),
        ("Mars/Olympus_Mons", "2026-12-06T09:00:00Z", "2026-12-05T09:00:00Z", None),
    ],
)
def test_next_and_last_run_in_the_task_zone(
    hostile: HostileServer,
    capsys: pytest.CaptureFixture[str],
    zone: str | None,
    next_run: str,
    last_slot: str,
    shown: tuple[str, str] | None,
) -> None:
    hostile.answer = lambda h: h.send(200, {"items": [task(zone, next_run, last_slot)]})
    assert cli("tasks", "--server", hostile.url) == 0
    row = capsys.readouterr().out.splitlines()[1]
    expected = shown or ("2026-12-06 09:00:00+0000", "succeeded 2026-12-05 09:00:00+0000")
    for cell in expected:
        assert cell in row, row


def test_a_time_past_the_calendar_in_the_zone_is_shown_as_given(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # 9999-12-31T23:00Z is year 10000 in Tokyo: printed as the server gave it, no traceback.
    far = "9999-12-31T23:00:00+00:00"
    hostile.answer = lambda h: h.send(200, {"items": [task("Asia/Tokyo", far, far)]})
    assert cli("tasks", "--server", hostile.url) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert row.count(far) == 2, row
