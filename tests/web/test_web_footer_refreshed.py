"""The footer's "page rendered HH:MM:SS UTC" is renewed by each refresh: it stayed at the first
load's moment while the regions above it refreshed every 5 s, so a page shown for an hour, and
current, said it was rendered an hour ago.

In Debian's chromium (skipped where it or Playwright is missing), against the page served by
uvicorn over a runtime whose clock moves a minute at each page drawn. A footer whose text is
selected (being copied) is left until the selection is gone."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
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


@pytest.fixture
def served() -> Iterator[str]:
    minutes = itertools.count()

    def clock() -> datetime:
        return T0 + timedelta(minutes=next(minutes))

    app = create_app(FakeRuntime([view("hello")]), auth=None, metrics=Metrics())
    with uvicorn_serving(web.install(app, clock=clock)) as url:
        yield url


@pytest.mark.parametrize("path", ["/", "/tasks/default/hello", "/sources"])
def test_a_refresh_renews_when_the_page_says_it_was_rendered(
    page: Any, served: str, path: str
) -> None:
    page.goto(served + path)
    first = page.inner_text("footer")
    assert "page rendered" in first
    tick_until(page, "refreshes", 0)
    assert page.inner_text("footer") != first
    assert "page rendered" in page.inner_text("footer")


def test_a_footer_being_copied_is_left_as_it_is(page: Any, served: str) -> None:
    page.goto(served + "/")
    first = page.inner_text("footer")
    page.eval_on_selector("footer", "f => getSelection().selectAllChildren(f)")
    tick_until(page, "refreshes", 0)
    assert page.inner_text("footer") == first
    assert page.evaluate("getSelection().toString()").strip() == first
    page.evaluate("getSelection().removeAllRanges()")
    tick_until(page, "refreshes", 1)
    assert page.inner_text("footer") != first
