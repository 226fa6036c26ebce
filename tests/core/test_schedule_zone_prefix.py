"""A ``CRON_TZ=`` or ``TZ=`` prefix in a schedule (cronie, robfig/cron) is refused with one line
that says where the zone goes (``spec.timeZone``), as a Kubernetes CronJob refuses it since
1.27; read as cron fields, it gave an error about the second field."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.core.schedule import ScheduleError, parse_schedule
from reconciler.sources.files import DirectorySource


@pytest.mark.parametrize(
    ("expression", "message", "column"),
    [
        (
            "CRON_TZ=Europe/Paris 0 3 * * *",
            "a CRON_TZ= prefix is not supported; set spec.timeZone: Europe/Paris instead",
            0,
        ),
        (
            "TZ=Asia/Tokyo 30 9 * * 1-5",
            "a TZ= prefix is not supported; set spec.timeZone: Asia/Tokyo instead",
            0,
        ),
        (
            "CRON_TZ=UTC @daily",
            "a CRON_TZ= prefix is not supported; set spec.timeZone: UTC instead",
            0,
        ),
        (" TZ=UTC @every 5m", "a TZ= prefix is not supported; set spec.timeZone: UTC instead", 1),
        (
            "cron_tz=Mars/Olympus 0 3 * * *",
            "a cron_tz= prefix is not supported; set spec.timeZone to the zone's IANA name "
            "(e.g. Europe/Paris) instead",
            0,
        ),
        (
            "TZ= 0 3 * * *",
            "a TZ= prefix is not supported; set spec.timeZone to the zone's IANA name "
            "(e.g. Europe/Paris) instead",
            0,
        ),
    ],
)
def test_a_zone_prefix_says_to_use_time_zone(expression: str, message: str, column: int) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(expression)
    assert str(caught.value) == message
    assert caught.value.column == column


def test_validate_points_at_the_prefix(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: a}\n"
        'spec:\n  schedule: "CRON_TZ=Europe/Berlin 0 2 * * *"\n  command: {args: ["true"]}\n'
    )
    source = DirectorySource([tmp_path])
    source.refresh(None)
    assert [str(e) for e in source.errors()] == [
        f"{tmp_path / 'a.yaml'}:5:14: spec.schedule: a CRON_TZ= prefix is not supported; "
        "set spec.timeZone: Europe/Berlin instead"
    ]
