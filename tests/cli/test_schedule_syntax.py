"""crontask validate / next with L, W, # and ? schedules, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.cli.main import main


def crontask(*argv: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    code = exited.value.code
    return code if isinstance(code, int) else 1


def doc(name: str, schedule: str, zone: str = "UTC") -> str:
    """A CronTask whose schedule is written as given (quote it yourself, or not)."""
    return (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
        f"metadata:\n  name: {name}\nspec:\n  schedule: {schedule}\n  timeZone: {zone}\n"
        '  command:\n    args: ["true"]\n'
    )


def test_validate_points_at_the_offending_item(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(
        "---\n".join(
            [
                doc("a", '"0 9 1,15,32W * *"'),
                doc("b", "'0 9 * L *'"),
                doc("c", "0 9 * * MON#2,FRI"),  # unquoted: libyaml's plain scalar
                doc("d", "0 9 * * 1#6"),
                doc("e", '"0 9 1-5W * *"'),
                doc("f", '"0 9 L * *"'),  # fine
            ]
        )
    )
    assert crontask("validate", str(file)) == 1
    lines = capsys.readouterr().out.splitlines()
    # Each document is 9 lines and a "---": the schedules are on lines 6, 16, 26, ... and
    # their values start at column 13, with a quote or without.
    assert lines == [
        f"{file}:6:23: spec.schedule: day-of-month field: 32 in '32W' is out of range 1-31; "
        "'W' takes a single day (1W-31W) or LW",
        f"{file}:16:20: spec.schedule: month field: 'L' is allowed only in the day-of-month "
        "field (L, L-3, LW) and in the day-of-week field (5L, FRIL: the last Friday of the "
        "month)",
        f"{file}:26:21: spec.schedule: day-of-week field: '#' must be the only item of the "
        "field (e.g. MON#2); lists with '#' are not supported",
        f"{file}:36:21: spec.schedule: day-of-week field: 6 in '1#6' is out of range 1-5 "
        "(MON#2 is the second Monday of the month)",
        f"{file}:46:18: spec.schedule: day-of-month field: 'W' takes a single day (1W-31W) or "
        "LW, not a range or a step; got '1-5W'",
    ]


def test_next_says_it_in_words_and_lists_the_dst_nights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "t.yaml"
    file.write_text(doc("month-end", '"30 2 * * SUNL"', zone="Europe/Berlin"))
    assert (
        crontask("next", str(file), "-n", "3", "--from", "2026-02-01T00:00:00+01:00", "--json") == 0
    )
    (item,) = json.loads(capsys.readouterr().out)["items"]  # a file's: a list, one task or more
    assert item == {
        "task": "default/month-end",
        "schedule": "30 2 * * SUNL",
        "timeZone": "Europe/Berlin",
        "description": "at 02:30 on the last Sunday of the month",
        # 29 March 2026 is the last Sunday and the spring-forward night: once, at the jump.
        "next": [
            "2026-02-22T02:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-04-26T02:30:00+02:00",
        ],
    }


def test_next_with_six_fields_and_a_question_mark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "t.yaml"
    file.write_text(doc("second-monday", '"0 0 12 ? * MON#2"'))
    assert crontask("next", str(file), "-n", "2", "--from", "2026-01-01T00:00:00Z") == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "  at 12:00 on the second Monday of the month",
        "  2026-01-12T12:00:00+00:00",
        "  2026-02-09T12:00:00+00:00",
    ]
