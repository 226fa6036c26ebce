"""A run page refreshes while the run waits to retry: its newest attempt has failed, and the
next one starts after the backoff. It stopped refreshing at that failure (the newest attempt is
over), so a page opened by Run now said "Attempt 1 failed" for good while attempts 2 and 3
ran, until a reload. The runtime lists such a run among its task's running ones
(``TaskView.running``, as the task's page and the list's ``running`` badge show it)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from reconciler.core.runs import RunStatus, Trigger
from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime, record

KEY = "ops/flaky"
AT = T0 + timedelta(hours=3)
REFRESH = ' data-refresh="2"'


def live_of(html: str) -> str:
    return html.split('<div id="live"')[1].split(">")[0]


def test_a_run_waiting_to_retry_is_refreshed_until_its_retry_is_shown(
    runtime: FakeRuntime, page: TestClient
) -> None:
    failed = record(KEY, AT, RunStatus.FAILED)
    runtime.store.claim(failed)
    runtime.views[KEY] = dataclasses.replace(runtime.views[KEY], running=(failed.id,))
    waiting = page.get(f"/runs/{failed.id}", headers={"X-Crontask-Refresh": "1"})
    assert "Attempt 1 " in waiting.text
    assert live_of(waiting.text) == REFRESH  # the retry comes after the backoff

    runtime.store.claim(record(KEY, AT, RunStatus.RUNNING, attempt=2, trigger=Trigger.RETRY))
    retrying = page.get(f"/runs/{failed.id}", headers={"X-Crontask-Refresh": "1"})
    assert "Attempt 2 " in retrying.text
    assert live_of(retrying.text) == REFRESH


def test_a_run_over_is_not_refreshed(runtime: FakeRuntime, page: TestClient) -> None:
    failed = record(KEY, AT, RunStatus.FAILED)
    runtime.store.claim(failed)
    # Another run of the task goes on: this one is over all the same.
    other = record(KEY, AT + timedelta(minutes=1), RunStatus.RUNNING)
    runtime.store.claim(other)
    runtime.views[KEY] = dataclasses.replace(runtime.views[KEY], running=(other.id,))
    html = page.get(f"/runs/{failed.id}").text
    assert live_of(html) == ""
    assert live_of(page.get(f"/runs/{other.id}").text) == REFRESH
