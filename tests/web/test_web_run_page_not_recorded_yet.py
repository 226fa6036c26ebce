"""A run its task lists as going, whose first record is not written yet (a Replace run waits
for the run it replaces to stop, up to --kill-grace), has a page that says so and refreshes
until the run is recorded, then shows it. The task's page links each running run: this one's
said "There is no run" and never refreshed, so it stayed so while the run went on."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from reconciler.core.runs import RunStatus
from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime, record

KEY = "ops/flaky"
REFRESH = {"X-Crontask-Refresh": "1", "Accept": "text/html"}


def live_of(html: str) -> str:
    return html.split('<div id="live"')[1].split(">")[0]


def test_a_run_not_recorded_yet_is_waited_for(runtime: FakeRuntime, page: TestClient) -> None:
    waiting = record(KEY, T0 + timedelta(hours=1, microseconds=5), RunStatus.RUNNING)
    runtime.views[KEY] = dataclasses.replace(runtime.views[KEY], running=(waiting.id,))
    for headers in ({"Accept": "text/html"}, REFRESH):  # the page, and its refresh
        answer = page.get(f"/runs/{waiting.id}", headers=headers)
        assert answer.status_code == 404  # no record of it, as the API says
        assert "There is no run" not in answer.text
        assert "not recorded yet" in answer.text
        assert live_of(answer.text) == ' data-refresh="2"'
        assert f'<a href="/tasks/{KEY}">{KEY}</a>' in answer.text
    runtime.store.claim(waiting)
    shown = page.get(f"/runs/{waiting.id}", headers=REFRESH)
    assert shown.status_code == 200
    assert "Attempt 1 " in shown.text


def test_a_run_nothing_lists_is_not_there(runtime: FakeRuntime, page: TestClient) -> None:
    gone = record(KEY, T0 + timedelta(hours=2))
    answer = page.get(f"/runs/{gone.id}", headers={"Accept": "text/html"})
    assert answer.status_code == 404
    assert f"There is no run {gone.id}" in answer.text
    assert "data-refresh" not in answer.text
    unknown = record("ops/nothing-here", T0)
    assert "There is no run" in page.get(f"/runs/{unknown.id}").text
