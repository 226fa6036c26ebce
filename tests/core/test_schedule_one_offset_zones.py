"""Zones that keep one UTC offset (UTC, Etc/GMT+5, ...) have no offset changes to look for.

Looking for them costs about a millisecond a year: ``next -n 1000`` of "0 0 29 2 *" in UTC
looked through 4 000 years of nothing (1.5 s). Such a zone is known by its tzdata name, and
only as ZoneInfo loads it under that name; any other zone (one with DST, one fixed today but
not in its history, a zone read from a file under a borrowed name) is still searched, and
what comes out is what searching gives.
"""

from __future__ import annotations

import importlib.resources
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import TZPATH, ZoneInfo, available_timezones

import pytest

from reconciler.core.schedule import CronSchedule, parse_schedule
from reconciler.core.schedule import zones as zone_module

ONE_OFFSET = ["UTC", "Etc/UTC", "GMT", "Zulu", "UCT", "Etc/GMT+5", "Etc/GMT-14", "Etc/GMT+12"]
# DST zones, and zones with one offset today but changes in their history.
CHANGING = ["Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata", "America/Phoenix", "EST"]
EXPRESSIONS = ["0 0 29 2 *", "59 59 23 31 12 *", "30 2 * * *", "0 0 1 1 *", "*/17 23 31 12 *"]
STARTS = [
    datetime(1900, 1, 1, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 30, tzinfo=UTC),
    datetime(9990, 1, 1, tzinfo=UTC),
]


def cron(expression: str, zone: ZoneInfo) -> CronSchedule:
    """The schedule in ``zone`` as given (parsing would look a name up in ZoneInfo's cache)."""
    schedule = parse_schedule(expression)
    assert isinstance(schedule, CronSchedule)
    return CronSchedule(expression, zone, schedule.spec)


def fires(expression: str, zone: ZoneInfo, after: datetime, n: int) -> list[tuple[str, int]]:
    return [(t.isoformat(), t.fold) for t in cron(expression, zone).fire_times(after, n)]


@pytest.mark.parametrize("name", ONE_OFFSET)
def test_a_zone_of_one_offset_is_not_searched_and_fires_as_when_it_was(name: str) -> None:
    zone = ZoneInfo(name)
    # The same rules outside ZoneInfo's cache: not known by name, so searched year by year.
    searched = ZoneInfo.no_cache(name)
    for expression in EXPRESSIONS:
        for after in STARTS:
            zone_module.year_transitions.cache_clear()
            got = fires(expression, zone, after, 25)
            assert zone_module.year_transitions.cache_info().misses == 0, (expression, after)
            assert got
            assert got == fires(expression, searched, after, 25), (expression, after)
    assert zone_module.keeps_one_offset(zone)
    assert not zone_module.keeps_one_offset(searched)


@pytest.mark.parametrize("name", CHANGING)
def test_a_zone_whose_offset_changes_is_still_searched(name: str) -> None:
    zone = ZoneInfo(name)
    zone_module.year_transitions.cache_clear()
    assert fires("30 2 * * *", zone, datetime(1940, 1, 1, tzinfo=UTC), 40)
    assert zone_module.year_transitions.cache_info().misses > 0
    assert not zone_module.keeps_one_offset(zone)


def test_rules_read_under_a_borrowed_name_are_searched(tmp_path: Path) -> None:
    """Berlin's rules read from a file and called "UTC": the name proves nothing here."""
    berlin = ZoneInfo("Europe/Berlin")
    path = tmp_path / "Berlin"
    path.write_bytes(_tzif("Europe/Berlin"))
    with path.open("rb") as file:
        borrowed = ZoneInfo.from_file(file, key="UTC")
    after = datetime(2027, 3, 27, tzinfo=UTC)
    expected = [t.astimezone(UTC) for t in cron("30 2 * * *", berlin).fire_times(after, 3)]
    got = [t.astimezone(UTC) for t in cron("30 2 * * *", borrowed).fire_times(after, 3)]
    # 02:30 on March 28 does not exist in Berlin: it fires at the jump, 01:00 UTC.
    assert got == expected
    assert got[1] == datetime(2027, 3, 28, 1, tzinfo=UTC)
    assert not zone_module.keeps_one_offset(borrowed)


def test_every_zone_known_by_name_keeps_its_offset_in_the_tzdata_here() -> None:
    """The names are tzdata's definition; the installed tzdata must agree, probed in years
    of its history and of its rules' future."""
    names = sorted(n for n in available_timezones() if zone_module.keeps_one_offset(ZoneInfo(n)))
    assert {"UTC", "Etc/GMT+5", "Zulu"} <= set(names)
    assert len(names) > 20  # Etc/GMT-14 to Etc/GMT+12 alone are 27
    for name in names:
        searched = ZoneInfo.no_cache(name)
        for year in (1850, 1945, 1970, 2026, 2100):
            assert zone_module.year_transitions(searched, year) == (), (name, year)
        first = datetime(1, 1, 2, tzinfo=UTC).astimezone(searched).utcoffset()
        last = datetime(9999, 12, 30, tzinfo=UTC).astimezone(searched).utcoffset()
        assert first == last == ZoneInfo(name).utcoffset(datetime(2026, 1, 1)), name
    assert timedelta(hours=-5) == ZoneInfo("Etc/GMT+5").utcoffset(datetime(2026, 1, 1))


def _tzif(name: str) -> bytes:
    """The TZif bytes of a zone, where ZoneInfo finds them (the system's tzdata, else the
    ``tzdata`` package)."""
    for directory in TZPATH:
        candidate = Path(directory) / name
        if candidate.is_file():
            return candidate.read_bytes()
    area, _, city = name.partition("/")
    return importlib.resources.files(f"tzdata.zoneinfo.{area}").joinpath(city).read_bytes()
