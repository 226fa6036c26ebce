"""``@every`` with a number of more than 12 decimal places says so: it said "missing unit"
with the unit there (``@every 1.0000000000000000001s``), the pattern of a part taking 12
decimals at most. Trailing zeros do not count, as leading zeros do not (``1.000...0s`` is 1s);
a number of any length is still never converted whole."""

from __future__ import annotations

from fractions import Fraction

import pytest

from reconciler.core.schedule import EverySchedule, ScheduleError, every, parse_schedule


@pytest.mark.parametrize(
    "expression",
    [
        "@every 1.0000000000000000001s",
        "@every 0.0000000000001h",
        "@every 1h.5555555555555m",
        "@every .1234567890123s",
        "@every 1." + "5" * 100_000 + "s",
    ],
)
def test_more_than_12_decimal_places_is_said(expression: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(expression)
    text = expression.split()[1]
    assert str(caught.value) == (
        f"@every: {text!r} has a number of more than 12 decimal places; "
        "the interval is a whole number of seconds (e.g. 30s, 5m, 1h30m)"
    )
    assert caught.value.column == 7


@pytest.mark.parametrize(
    ("expression", "interval"),
    [
        ("@every 1.0000000000000000000s", 1),
        ("@every 1.5000000000000000000m", 90),
        ("@every 0.250000000000000000h", 900),
        ("@every 1." + "0" * 100_000 + "s", 1),  # past 4300 digits int() would refuse
        ("@every 1.000000000000s", 1),  # 12 decimals, as before
    ],
)
def test_trailing_zeros_do_not_count(expression: str, interval: int) -> None:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, EverySchedule)
    assert schedule.interval == interval


def test_12_decimal_places_that_are_no_whole_second_are_said_so() -> None:
    with pytest.raises(ScheduleError, match=r"'0.000000000001h' is not a whole number of seconds"):
        parse_schedule("@every 0.000000000001h")


def test_the_unit_is_still_checked_first() -> None:
    with pytest.raises(ScheduleError, match=r"missing unit in '1.0000000000000000001'"):
        parse_schedule("@every 1.0000000000000000001")
    with pytest.raises(ScheduleError, match=r"unknown unit 'd' in '1.0000000000000000001d'"):
        parse_schedule("@every 1.0000000000000000001d")


def test_a_long_fraction_is_not_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    converted: list[str] = []

    def counting(text: str | int) -> object:
        converted.append(str(text))
        return Fraction(text)

    monkeypatch.setattr(every, "Fraction", counting)
    with pytest.raises(ScheduleError):
        every.parse_duration("1h1." + "5" * 100_000 + "s")
    assert every.parse_duration("1." + "0" * 100_000 + "s") == 1
    assert all(len(text) < 30 for text in converted), [len(t) for t in converted]
