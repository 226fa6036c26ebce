"""A filter the server refuses, typed with the script on, says why: ``Ops`` in the namespace
field (namespaces are lower case) left the list of every namespace under a banner "Not
refreshed since HH:MM:SS UTC (status 422)", which the next refresh took away, so the list read
as the tasks of ``Ops``. The refusal's own words now stand under the filters ("This filter is
not applied: namespace: 'Ops' is not a valid namespace"), until a filter is applied.

In Debian's chromium (skipped where it or Playwright is missing), against the page served by
uvicorn."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reconciler import web
from reconciler.api.app import create_app
from reconciler.sinks.metrics import Metrics
from tests.api.fakes import T0, FakeRuntime, view
from tests.uvicorn_app import uvicorn_serving
from tests.web.chromium import chromium, page
from tests.web.test_web_refresh_focus import tick_until

pytestmark = [pytest.mark.e2e]
__all__ = ["chromium", "page"]  # fixtures, used by name

PROBLEM = "#filter-problem"


@pytest.fixture
def served() -> Iterator[str]:
    runtime = FakeRuntime([view("hello"), view("backup", "ops"), view("nightly", "ops")])
    app = create_app(runtime, auth=None, metrics=Metrics())
    with uvicorn_serving(web.install(app, clock=lambda: T0)) as url:
        yield url


def rows(page: Any) -> list[str]:
    return [row.get_attribute("data-task") for row in page.query_selector_all("tr[data-task]")]


def test_a_refused_filter_says_why_until_one_is_applied(page: Any, served: str) -> None:
    page.goto(served + "/")
    assert rows(page) == ["default/hello", "ops/backup", "ops/nightly"]
    page.fill('input[name="namespace"]', "Ops")
    page.clock.run_for(1_000)  # past the typing pause
    said = page.wait_for_selector(PROBLEM)
    assert said is not None
    text = said.inner_text()
    assert "This filter is not applied" in text
    assert "namespace: 'Ops' is not a valid namespace" in text
    assert said.get_attribute("role") == "alert"
    assert page.query_selector("#stale") is None  # the page itself is current
    tick_until(page, "refreshes", 0)  # a refresh keeps saying it
    assert "namespace: 'Ops'" in page.inner_text(PROBLEM)
    page.fill('input[name="namespace"]', "ops")
    page.clock.run_for(1_000)
    page.wait_for_selector(PROBLEM, state="detached")
    assert rows(page) == ["ops/backup", "ops/nightly"]


def test_a_refusal_of_the_history_filter_is_said_too(page: Any, served: str) -> None:
    page.goto(served + "/tasks/ops/backup")
    # A value the select does not offer (an old bookmark's, a hand-edited page).
    page.eval_on_selector('select[name="status"]', "s => { s.add(new Option('bogus', 'bogus')); }")
    page.select_option('select[name="status"]', "bogus")
    said = page.wait_for_selector(PROBLEM)
    assert said is not None
    assert "status: 'bogus' is not a run status" in said.inner_text()
