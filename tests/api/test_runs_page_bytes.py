"""A page of ``GET /api/v1/runs`` ends early after :data:`RUNS_PAGE_BYTES` of runs, with a
``continue`` token like any other: ``?limit=1000`` of runs with long messages (stored whole by
an older crontask) had been a 128 MB answer, built in crontask's memory at once."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from reconciler.api import routes_runs
from reconciler.core.runs import RunStatus
from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime, record
from tests.api.test_runs import walk

BUDGET = 10_000  # bytes a page, for the test (crontask's is MiB)
MESSAGE = 3_000  # bytes of each run's message: three runs and some a page


def seed(runtime: FakeRuntime, n: int, message: str) -> list[str]:
    ids = []
    for i in range(n):
        r = record("ops/long", T0 - timedelta(hours=i + 1), RunStatus.FAILED)
        runtime.store.claim(dataclasses.replace(r, message=f"{i}:{message}"))
        ids.append(r.id)
    return ids


def test_a_page_ends_after_its_bytes(
    client: TestClient, runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routes_runs, "RUNS_PAGE_BYTES", BUDGET, raising=False)
    ids = seed(runtime, 20, "m" * MESSAGE)
    first = client.get("/api/v1/runs?task=ops/long&limit=1000")
    assert first.status_code == 200
    assert len(first.json()["items"]) < 20
    assert len(first.content) <= BUDGET + MESSAGE + 1000  # at most one run past the budget
    assert first.json()["metadata"]["continue"] is not None
    items, pages = walk(client, "task=ops/long&limit=1000")
    assert [i["id"] for i in items] == ids  # each once, newest first, filter kept
    assert pages >= 20 * MESSAGE // BUDGET


def test_a_run_larger_than_a_page_is_a_page_of_its_own(
    client: TestClient, runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routes_runs, "RUNS_PAGE_BYTES", 1_000, raising=False)
    ids = seed(runtime, 3, "m" * MESSAGE)
    items, pages = walk(client, "task=ops/long&limit=2")
    assert [i["id"] for i in items] == ids
    assert pages == 3


def test_small_runs_fill_the_page(client: TestClient, runtime: FakeRuntime) -> None:
    """crontask's own budget: a full page of runs whose messages are as long as stored
    (4 KiB) is not cut."""
    ids = seed(runtime, 1000, "m" * 4000)
    body = client.get("/api/v1/runs?task=ops/long&limit=1000").json()
    assert [i["id"] for i in body["items"]] == ids
    assert body["metadata"]["continue"] is None
