"""The task page's timeline of the last 24 hours, for a keyboard, in a real browser (Debian's
chromium, headless, driven by Playwright) against the real ``crontask run``: each bar of it
was a link and a Tab stop, up to 1 000 of them between Run now and the history's filter (82
to 227 presses for a task run every 2 s), and while the focus was on one the refresh was
held. Now no bar is a Tab stop, as no cell of the run strip but the newest is
(tests/web/test_web_strip_keyboard.py); each bar is still a link to its run, and the
history reaches each run by keyboard. Skipped where chromium or Playwright is missing, as
tests/web/test_browser.py is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.helpers import wait_for
from tests.web.chromium import chromium, page

pytestmark = [pytest.mark.e2e]
__all__ = ["chromium", "page"]  # fixtures, used by name

RUNS = 4  # bars drawn before the page is looked at: each was one more Tab stop
PRESSES_MAX = 40  # a bound well above the page's other stops, well below one per bar


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crontask]:
    home = tmp_path_factory.mktemp("timeline")
    tasks = home / "tasks"
    tasks.mkdir()
    (tasks / "often.yaml").write_text(task("often", ["true"]))  # every second
    crontask = Crontask(home, tasks, []).start()
    yield crontask
    crontask.stop()


def focus_in_timeline(page: Any) -> bool:
    found: bool = page.evaluate(
        "!!(document.activeElement && document.activeElement.closest('svg.timeline'))"
    )
    return found


def focus_on_the_filter(page: Any) -> bool:
    found: bool = page.evaluate(
        "!!(document.activeElement && document.activeElement.name === 'status')"
    )
    return found


@pytest.mark.slow  # a crontask starts, and runs the task 4 times: 8 s
def test_no_bar_of_the_timeline_is_a_tab_stop(page: Any, app: Crontask) -> None:
    wait_for(f"{RUNS} runs", lambda: len(app.runs("default/often")) >= RUNS, 30)
    page.goto(f"{app.server}/tasks/default/often")
    bars = page.locator("svg.timeline a")
    assert bars.count() >= RUNS
    presses, stops_in_timeline = 0, 0
    page.focus("form.run-now button")
    while not focus_on_the_filter(page):
        assert presses < PRESSES_MAX, "Tab never reached the history's filter"
        page.keyboard.press("Tab")
        presses += 1
        stops_in_timeline += focus_in_timeline(page)
    assert stops_in_timeline == 0
    # Each bar is still a link to its run (a bar of a second's run is too narrow to click here).
    hrefs = bars.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert all(href.startswith("/runs/default.often.") for href in hrefs), hrefs
