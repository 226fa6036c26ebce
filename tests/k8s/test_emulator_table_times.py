"""A ``date`` printer column whose value UTC cannot hold, or that lies far off: the API server
accepts such a time (RFC 3339 with an offset, ``9999-12-31T23:00:00-05:00`` is year 10000 in
UTC) and renders it as Go does (``<invalid>`` for a time ahead, ``time.Since`` saturating at
about 292 years for one long past), never a 500 for the whole table."""

from __future__ import annotations

import pytest

from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import load_crd
from tests.k8s.emulator.table import human_duration
from tests.k8s.emulator.timefmt import parse_time
from tests.k8s.support import GROUP, PLURAL, TABLE_ACCEPT, VERSION, crontask, http_call

COLLECTION = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"


@pytest.mark.parametrize(
    ("since", "shown"),
    [
        ("9999-12-31T23:00:00-05:00", "<invalid>"),  # past year 9999 in UTC
        ("9999-12-31T23:59:59Z", "<invalid>"),
        ("0001-01-01T00:00:00+01:00", "292y"),  # before year 1 in UTC
        ("0001-01-02T00:00:00Z", "292y"),
    ],
)
def test_a_date_cell_of_a_time_out_of_range(emulator: Emulator, since: str, shown: str) -> None:
    crd = load_crd()
    crd["spec"]["versions"][0]["additionalPrinterColumns"] = [
        {"name": "Since", "type": "date", "jsonPath": ".spec.since"}
    ]
    emulator.create_crd(crd)
    emulator.create(crontask("x", since=since))
    status, _, table = http_call(emulator, "GET", COLLECTION, headers={"Accept": TABLE_ACCEPT})
    assert status == 200, table
    assert table["rows"][0]["cells"] == ["x", shown]


def test_a_time_utc_cannot_hold_still_parses() -> None:
    late = parse_time("9999-12-31T23:00:00-05:00")
    early = parse_time("0001-01-01T00:00:00+01:00")
    assert early < parse_time("0001-01-01T00:00:00Z") < late


def test_human_duration_saturates_as_go_durations_do() -> None:
    # time.Since is an int64 of nanoseconds: at most 2562047 hours.
    assert human_duration(10**12) == human_duration(2562047 * 3600) == "292y"
