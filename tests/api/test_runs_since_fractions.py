"""``GET /api/v1/runs`` ``since`` and ``until`` with more than 6 fraction digits (.NET's "o"
writes 7, Go's RFC3339Nano 9; RFC 3339 sets no limit) were a 422. They are rounded up to the
microsecond, which keeps both bounds exact on runs scheduled at whole microseconds: ``since``
takes runs at or after, ``until`` runs before. And an offset's ``+`` sent unencoded (a space,
once the query is decoded) is a 422 that says so.

Against the real ``crontask run``, over real HTTP (httpx), its store seeded before it starts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import open_store, sqlite_url
from tests.e2e.conftest import Crontask

pytestmark = pytest.mark.e2e

KEY = "default/fine"
# Two runs a microsecond apart: a bound between them tells a rounding from a truncation.
EARLY = datetime(2026, 12, 1, 0, 0, 0, 123456, tzinfo=UTC)
LATE = EARLY + timedelta(microseconds=1)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crontask]:
    work = tmp_path_factory.mktemp("fractions")
    tasks = work / "tasks"
    tasks.mkdir()
    store = open_store(sqlite_url(work / "state"), writer=True)
    try:
        store.save_many(
            [
                RunRecord(
                    id=run_id(KEY, at),
                    task=KEY,
                    scheduled_at=at,
                    trigger=Trigger.MANUAL,
                    status=RunStatus.SUCCEEDED,
                    exit_code=0,
                )
                for at in (EARLY, LATE)
            ]
        )
    finally:
        store.close()
    instance = Crontask(work, tasks, []).start()
    try:
        yield instance
    finally:
        instance.stop()


def runs(app: Crontask, **params: str) -> list[str]:
    answer = httpx.get(f"{app.server}/api/v1/runs", params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    return [item["scheduledTime"] for item in answer.json()["items"]]


@pytest.mark.parametrize(
    "between", ["2026-12-01T00:00:00.1234561Z", "2026-12-01T01:00:00.123456001+01:00"]
)
def test_a_bound_past_the_microsecond_rounds_up(app: Crontask, between: str) -> None:
    # Past EARLY, before LATE: since takes LATE only, until EARLY only.
    late, early = runs(app, task=KEY)
    assert runs(app, task=KEY, since=between) == [late]
    assert runs(app, task=KEY, until=between) == [early]


@pytest.mark.parametrize(
    "exact", ["2026-12-01T00:00:00.1234570Z", "2026-12-01T00:00:00.123457000Z"]
)
def test_zeros_past_the_microsecond_are_the_microsecond(app: Crontask, exact: str) -> None:
    late, early = runs(app, task=KEY)
    assert runs(app, task=KEY, since=exact) == [late]  # at or after
    assert runs(app, task=KEY, until=exact) == [early]  # before


def test_ten_fraction_digits_are_refused(app: Crontask) -> None:
    answer = httpx.get(
        f"{app.server}/api/v1/runs",
        params={"since": "2026-12-01T00:00:00.1234567891Z"},
        timeout=30,
    )
    assert answer.status_code == 422, answer.text


def test_an_unencoded_plus_is_said(app: Crontask) -> None:
    # Written into the URL as is: the query's decoding makes the "+" a space.
    url = f"{app.server}/api/v1/runs?limit=1&since=2026-12-01T01:00:00+01:00"
    answer = httpx.get(url, timeout=30)
    assert answer.status_code == 422, answer.text
    assert "a '+' in a URL query is read as a space: write %2B01:00" in answer.text
    assert httpx.get(url.replace("+", "%2B"), timeout=30).status_code == 200
