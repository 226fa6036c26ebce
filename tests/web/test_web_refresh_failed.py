"""A page whose refresh fails says so, in a real browser (Debian's chromium, headless, driven by
Playwright) against the real ``crontask run``: a task taken out of its file turns its page
into "Not found" (no Run now button left), and an answer that is no page (a 503) leaves the
page showing a banner "Not refreshed since HH:MM:SS (status 503)" until a refresh succeeds.

The page's timers run on Playwright's fake clock: a refresh happens when the test moves the
clock past it, not after five seconds of real time. Skipped where chromium or Playwright is
missing, as tests/web/test_browser.py is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.helpers import wait_for

pytestmark = [pytest.mark.e2e]

CHROMIUM = Path("/usr/bin/chromium")
# Without these chromium reaches for Google's hosts (updates, sync, field trials, DNS prefetch).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-domain-reliability",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
PAST_A_REFRESH = 6_000  # ms: the task page refreshes every 5 s

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM}: install Debian's chromium (.ci/run does)")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        yield browser
        browser.close()


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


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context()
    tab = context.new_page()
    tab.clock.install()  # before the page loads: its refresh timer is the fake clock's
    tab.set_default_timeout(10_000)
    yield tab
    context.close()


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
        r"Not refreshed since (\d\d:\d\d:\d\d) \(status 503\): what this page shows may be "
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
