"""``crontask next NAMESPACE/NAME --server``, without ``--from``: not before the slot the server
waits for. After the server's clock went back, no slot runs until it passes that one again
(README): the slots of the schedule between the clock and it ran already, and are not run
again. ``--from`` still lists the slots from the instant it gives."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tests.cli.hostile import HostileServer, cli
from tests.helpers import task_doc

# An hour after this test runs, whenever it runs: the server's clock went back an hour.
WAITED = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)


def _next(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], next_runs: Any, *flags: str
) -> list[datetime]:
    item = {
        "key": "ops/a",
        "resource": task_doc("a", "ops", schedule="* * * * * *"),
        "nextRuns": next_runs,
    }
    hostile.answer = lambda h: h.send(200, item)
    assert cli("next", "ops/a", "--server", hostile.url, "-n", "2", "--json", *flags) == 0
    return [datetime.fromisoformat(t) for t in json.loads(capsys.readouterr().out)["next"]]


def test_the_slots_start_at_the_one_the_server_waits_for(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # With an offset: the API writes each task's times in its zone.
    waited = WAITED.astimezone(timezone(timedelta(hours=1))).isoformat()
    assert _next(hostile, capsys, [waited]) == [WAITED, WAITED + timedelta(seconds=1)]


def test_from_lists_the_slots_after_the_instant_given(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _next(hostile, capsys, [WAITED.isoformat()], "--from", "2030-01-01T00:00:00Z") == [
        datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC),
        datetime(2030, 1, 1, 0, 0, 2, tzinfo=UTC),
    ]


@pytest.mark.parametrize("next_runs", [[], None, "2030-01-01T00:00:00Z", [5], ["tomorrow"]])
def test_without_a_time_to_wait_for_the_slots_start_now(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], next_runs: Any
) -> None:
    """A suspended task lists none; an answer that is no list of times is not one (a server
    that is no crontask's): the slots from now on, as from a file."""
    first, _ = _next(hostile, capsys, next_runs)
    assert first < WAITED - timedelta(minutes=30)


def test_a_server_behind_this_clock_is_listed_from_its_own_slot(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server's clock went back and this one's is right (an operator's laptop): the slot it
    waits for is in this clock's past, and still the next it runs."""
    behind = (datetime.now(UTC) - timedelta(seconds=30)).replace(microsecond=0)
    assert _next(hostile, capsys, [behind.isoformat()]) == [behind, behind + timedelta(seconds=1)]
