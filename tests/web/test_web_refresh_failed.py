"""A page whose refresh fails says so, in a real browser (Debian's chromium, headless, driven by
Playwright) against the real ``crontask run``: a task taken out of its file turns its page
into "Not found" (no Run now button left), and an answer that is no page (a 503) leaves the
page showing a banner "Not refreshed since HH:MM:SS UTC (status 503)" until a refresh succeeds.

The page's timers run on Playwright's fake clock: a refresh happens when the test moves the
clock past it, not after five seconds of real time. Skipped where chromium or Playwright is
missing, as tests/web/test_browser.py is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.helpers import wait_for
from tests.web.chromium import PAST_A_REFRESH, chromium, page

pytestmark = [pytest.mark.e2e]
__all__ = ["chromium", "page"]  # fixtures, used by name


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crontask]:
    home = tmp_path_factory.mktemp("refresh")
    tasks = home / "tasks"
    tasks.mkdir()
    for name in ("gone", "kept"):
        (tasks / f"{name}.yaml").write_text(task(name, ["true"], schedule="0 2 * * *"))
    crontask = Crontask(home, tasks, []).start()
    yield crontask
    crontask.stop()


@pytest.mark.slow
def test_a_task_taken_out_of_its_file_shows_as_gone(page: Any, app: Crontask) -> None:
    page.goto(f"{app.server}/tasks/default/gone")
    assert "gone" in page.inner_text("h1")
    assert page.locator("form.run-now").count() == 1
    (app.tasks / "gone.yaml").unlink()
    wait_for(
        "crontask to drop the task",
        lambda: httpx.get(f"{app.server}/api/v1/tasks/default/gone").status_code == 404,
    )
    page.clock.run_for(PAST_A_REFRESH)
    page.wait_for_selector("h1:has-text('Not found')")
    assert "There is no task default/gone" in page.inner_text("main")
    assert page.locator("form.run-now").count() == 0  # nothing left to run
    assert page.title().startswith("Not found")
    assert page.locator("#stale").count() == 0


def test_a_refresh_answered_with_no_page_shows_a_banner_until_one_succeeds(
    page: Any, app: Crontask
) -> None:
    failure: list[str] = ["503"]  # how the next refreshes fail: a 503, no answer, or not

    def refresh(route: Any) -> None:
        if not failure or not route.request.headers.get("x-crontask-refresh"):
            route.continue_()
        elif failure[0] == "503":
            route.fulfill(
                status=503,
                content_type="application/problem+json",
                body='{"title": "Service Unavailable", "status": 503}',
            )
        else:
            route.abort("connectionrefused")

    page.route("**/tasks/default/kept", refresh)
    page.goto(f"{app.server}/tasks/default/kept")
    page.clock.run_for(PAST_A_REFRESH)
    banner = page.wait_for_selector("#stale")
    assert banner is not None
    text = banner.inner_text()
    assert re.fullmatch(
        r"Not refreshed since (\d\d:\d\d:\d\d) UTC \(status 503\): what this page shows may be "
        r"out of date\.",
        text,
    ), text
    assert page.locator("form.run-now").count() == 1  # the page is still the task's
    failure[0] = "no answer"
    page.clock.run_for(PAST_A_REFRESH)
    page.wait_for_selector("#stale:has-text('(no answer)')")
    since = text.split()[3]
    assert f"since {since} " in page.inner_text("#stale")  # since the last refresh that worked
    failure.clear()
    page.clock.run_for(PAST_A_REFRESH)
    page.wait_for_selector("#stale", state="detached")
    assert "kept" in page.inner_text("h1")
