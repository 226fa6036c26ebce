"""Zones that keep one UTC offset (UTC, Etc/GMT+5, ...) have no offset changes to look for.

Looking for them costs about a millisecond a year: ``next -n 1000`` of "0 0 29 2 *" in UTC
looked through 4 000 years of nothing (1.5 s). Such a zone is known by its TZif data (no
transitions, a footer without DST rules), not by its name, and only as ZoneInfo loads it under
its key; any other zone (one with DST, one fixed today but not in its history, a tz tree that
holds other rules under an Etc name, a zone read from a file under a borrowed name) is still
searched, and what comes out is what searching gives.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import struct
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import TZPATH, ZoneInfo, available_timezones

import pytest

from reconciler.core.schedule import CronSchedule, parse_schedule, tzif
from reconciler.core.schedule import zones as zone_module

ONE_OFFSET = ["UTC", "Etc/UTC", "GMT", "Zulu", "UCT", "Etc/GMT+5", "Etc/GMT-14", "Etc/GMT+12"]
# DST zones, and zones with one offset today but changes in their history.
# (Not EST: since tzdata 2024b a link to America/Panama, but one offset in older trees such as
# Debian's 2025b, which keeps the old definitions.)
CHANGING = [
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Phoenix",
    "America/Panama",
]
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


def test_every_zone_its_data_call_fixed_keeps_its_offset_when_searched() -> None:
    """Whatever the data say is checked against searching, in years of the zone's history and
    of its rules' future, for every zone here (a parse that took a DST zone for fixed fails)."""
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


# Run with PYTHONTZPATH set to a tree of the test's making: ZoneInfo caches zones per process.
# Prints, per zone: whether it was taken for fixed, and its fire times as they come and as
# searching every year gives them.
_FIRE_TIMES_IN_TREE = """
import json, sys
from datetime import UTC, datetime
from reconciler.core.schedule import parse_schedule, zones
names, spoiled = sys.argv[1].split(","), sys.argv[2]
after = datetime(2026, 7, 1, tzinfo=UTC)
schedules = {name: parse_schedule("0 9 * * *", name) for name in names}
with open(spoiled, "wb") as file:  # loaded by ZoneInfo above; no TZif any more
    file.write(b"not TZif")
out = {}
for name, schedule in schedules.items():
    keeps = zones.keeps_one_offset(schedule.zone)
    out[name] = {"keeps": keeps, "fires": [t.isoformat() for t in schedule.fire_times(after, 200)]}
zones.keeps_one_offset = lambda zone: False
for name, schedule in schedules.items():
    out[name]["searched"] = [t.isoformat() for t in schedule.fire_times(after, 200)]
print(json.dumps(out))
"""


def test_the_data_in_use_decide_not_the_name(tmp_path: Path) -> None:
    """A tz tree with New York's rules under "Etc/GMT+5" (the name is only a file name), one
    with no transitions but DST in its footer, one that is no longer TZif when first asked
    about, and a true fixed zone: only the last is not searched, and each fires as searching
    gives."""
    tree = tmp_path / "tz"
    (tree / "Etc").mkdir(parents=True)
    (tree / "Etc/GMT+5").write_bytes(_tzif("America/New_York"))
    utc = _tzif("Etc/UTC")
    assert utc.endswith(b"\nUTC0\n")
    (tree / "Etc/GMT+4").write_bytes(utc.removesuffix(b"UTC0\n") + b"EST5EDT,M3.2.0,M11.1.0\n")
    (tree / "Etc/GMT+2").write_bytes(_tzif("Etc/GMT+2"))
    (tree / "Etc/GMT+3").write_bytes(_tzif("Etc/GMT+3"))
    names = ["Etc/GMT+5", "Etc/GMT+4", "Etc/GMT+2", "Etc/GMT+3"]
    done = subprocess.run(
        [sys.executable, "-c", _FIRE_TIMES_IN_TREE, ",".join(names), str(tree / "Etc/GMT+2")],
        env={**os.environ, "PYTHONTZPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(done.stdout)
    for name in names:
        assert out[name]["fires"] == out[name]["searched"], name
    assert {name: out[name]["keeps"] for name in names} == {
        "Etc/GMT+5": False,
        "Etc/GMT+4": False,
        "Etc/GMT+2": False,
        "Etc/GMT+3": True,
    }
    # The trees' rules are in force: daylight saving time in the two with DST rules.
    for name in ("Etc/GMT+5", "Etc/GMT+4"):
        offsets = {fire[-6:] for fire in out[name]["fires"]}
        assert offsets == {"-04:00", "-05:00"}, name
    assert {fire[-6:] for fire in out["Etc/GMT+3"]["fires"]} == {"-03:00"}


def _v1(transitions: int) -> bytes:
    """Version 1 TZif data (no footer): ``transitions`` changes to one type, UTC."""
    header = b"TZif" + b"\0" * 16 + struct.pack(">6L", 0, 0, 0, transitions, 1, 4)
    return header + b"\0\0\0\0" * transitions + b"\0" * transitions + b"\0" * 6 + b"UTC\0"


def test_one_offset_is_read_from_both_bodies_and_the_footer() -> None:
    # tzdata's "slim" files leave the version 1 body empty: the version 2 body must be read.
    kolkata = importlib.resources.files("tzdata.zoneinfo.Asia").joinpath("Kolkata").read_bytes()
    assert tzif.holds_one_offset(_v1(0)) is True
    assert tzif.holds_one_offset(_v1(1)) is False
    assert tzif.holds_one_offset(kolkata[:5] + b"\0" + kolkata[6:]) is False  # as version 1
    assert tzif.holds_one_offset(kolkata) is False
    fixed = _tzif("Etc/GMT-14")
    assert tzif.holds_one_offset(fixed) is True
    for broken in (b"", b"TZjf" + _v1(0)[4:], _v1(0)[:-1], fixed[:-1], fixed[:-12], fixed[:-30]):
        with pytest.raises(ValueError, match="TZif"):
            tzif.holds_one_offset(broken)


@pytest.mark.parametrize("key", ["/etc/passwd", "../UTC", "Etc/../../UTC", "Etc//UTC", "UTC/", ""])
def test_a_key_zoneinfo_refuses_as_a_path_is_not_read(key: str) -> None:
    with pytest.raises(ValueError, match="ZoneInfo keys"):
        ZoneInfo.no_cache(key)
    with pytest.raises(ValueError, match="time zone key"):
        tzif.read(key)
    assert tzif.read("Etc/UTC") == _tzif("Etc/UTC")


def _tzif(name: str) -> bytes:
    """The TZif bytes of a zone, where ZoneInfo finds them (the system's tzdata, else the
    ``tzdata`` package)."""
    for directory in TZPATH:
        candidate = Path(directory) / name
        if candidate.is_file():
            return candidate.read_bytes()
    area, _, city = name.partition("/")
    return importlib.resources.files(f"tzdata.zoneinfo.{area}").joinpath(city).read_bytes()
