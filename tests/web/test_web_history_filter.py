"""The task page's Run history filter: outside the refreshed regions (a refresh replaced it,
taking its focus and an open list away), and it shows the status it filters on (the page's
``status`` macro hid the value: "No runs with status <Macro 'status'>", no option selected,
and the "older runs" link carried the macro)."""

from __future__ import annotations

from datetime import timedelta

from reconciler.core.runs import RunStatus
from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime, record


def test_the_filter_is_outside_the_refreshed_regions(page: TestClient) -> None:
    html = page.get("/tasks/ops/flaky").text
    live = html.split('<div id="live"')[1].split('<div id="live-history"')[0]
    assert "<select" not in live.split("</svg>")[0]
    form = html.index('<select name="status">')
    assert html.index('<div id="live-history" data-live>') > form
    assert "</div>" in html[html.index("</svg>") : form]  # #live ends before the filter


def test_the_filter_shows_the_status_it_filters_on(page: TestClient) -> None:
    html = page.get("/tasks/default/paused?status=failed").text
    assert "No runs with status failed in the history" in html
    assert "<option selected>failed</option>" in html
    assert "Macro" not in html


def test_older_runs_keep_the_status(runtime: FakeRuntime, page: TestClient) -> None:
    for minutes in range(55):
        runtime.store.claim(
            record("ops/flaky", T0 - timedelta(minutes=minutes + 2), RunStatus.FAILED)
        )
    html = page.get("/tasks/ops/flaky?status=failed").text
    assert 'href="?status=failed&amp;cursor=' in html
