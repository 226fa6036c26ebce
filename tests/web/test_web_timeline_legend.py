"""The timeline's legend counts runs, and the attempts beside them when a run retried: each
attempt is a bar, and a run that failed twice and then succeeded read as "3 runs"."""

from __future__ import annotations

from datetime import timedelta

from reconciler.core.runs import RunStatus, Trigger
from tests.api.conftest import TestClient
from tests.api.fakes import FakeRuntime, record
from tests.web.conftest import NOW

KEY = "ops/flaky"  # two runs in the last 24 hours (the fixture's), one attempt each


def legend(page: TestClient) -> str:
    html: str = page.get(f"/tasks/{KEY}").text
    return html.split('<p class="muted legend">')[1].split(" since ")[0]


def test_a_run_that_retried_counts_once_with_its_attempts(
    runtime: FakeRuntime, page: TestClient
) -> None:
    assert legend(page) == "2 runs"
    at = NOW - timedelta(minutes=10)
    for attempt, status in enumerate([RunStatus.FAILED, RunStatus.FAILED, RunStatus.SUCCEEDED]):
        trigger = Trigger.RETRY if attempt else Trigger.SCHEDULE
        runtime.store.claim(record(KEY, at, status, attempt=attempt + 1, trigger=trigger))
    assert legend(page) == "3 runs (5 attempts)"
