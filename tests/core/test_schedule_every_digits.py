"""``@every`` with a number of 13 digits or more is out of range (1s to 8760h), not missing its
unit; leading zeros do not count, as in Go's durations. Such a number is refused from its
length, never converted."""

from __future__ import annotations

from fractions import Fraction

import pytest

from reconciler.core.schedule import EverySchedule, ScheduleError, every, parse_schedule


@pytest.mark.parametrize(
    "expression",
    [
        "@every 9999999999999h",
        "@every 1000000000000s",
        "@every 1h99999999999999999999m",
        "@every 0000000000000099999999999999h",
        "@every 9999999999999.5h",
        "@every " + "9" * 100_000 + "s",
    ],
)
def test_a_long_number_is_out_of_range(expression: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(expression)
    text = expression.split()[1]
    assert str(caught.value) == (
        f"@every: {text!r} is longer than a year; the interval must be 1s to 8760h"
    )
    assert caught.value.column == 7


@pytest.mark.parametrize(
    ("expression", "interval"),
    [
        ("@every 0000000000001h", 3600),
        ("@every 00000000000000000000030m", 1800),
        ("@every 000000000000031536000s", 31_536_000),
        ("@every " + "0" * 100_000 + "1s", 1),  # past 4300 digits int() would refuse
        ("@every 1.50000000000h.5h", 7200),
    ],
)
def test_leading_zeros_do_not_count(expression: str, interval: int) -> None:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, EverySchedule)
    assert schedule.interval == interval


def test_the_unit_is_still_checked_first() -> None:
    with pytest.raises(ScheduleError, match=r"missing unit in '9999999999999'"):
        parse_schedule("@every 9999999999999")
    with pytest.raises(ScheduleError, match=r"unknown unit 'd' in '9999999999999d'"):
        parse_schedule("@every 9999999999999d")


def test_a_long_number_is_not_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    converted: list[str] = []

    def counting(text: str | int) -> object:
        converted.append(str(text))
        return Fraction(text)

    monkeypatch.setattr(every, "Fraction", counting)
    with pytest.raises(ScheduleError):
        every.parse_duration("1h" + "9" * 100_000 + "s")
    assert all(len(text) < 20 for text in converted)
