"""The page's refresh leaves a person's focus and selection alone, in a real browser (Debian's
chromium, headless, driven by Playwright) against the real ``crontask run``: a refresh that is
due while a link in a live region has the focus, or text in it is selected, waits for the next
tick (replacing the region took the focus, the selection, an open list away), and happens
once the focus or the selection is gone. The task page's history filter is outside the
refreshed regions; the history itself is refreshed with them.

The page's timers run on Playwright's fake clock; the test waits on the counters the script
keeps on <html> (``data-refreshes``, ``data-refreshes-held``), never on time. Skipped where
chromium or Playwright is missing, as tests/web/test_browser.py is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.web.chromium import PAST_A_REFRESH, chromium, page

pytestmark = [pytest.mark.e2e]
__all__ = ["chromium", "page"]  # fixtures, used by name

LINK = 'tr[data-task="default/kept"] td.key a'


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crontask]:
    home = tmp_path_factory.mktemp("focus")
    tasks = home / "tasks"
    tasks.mkdir()
    (tasks / "kept.yaml").write_text(task("kept", ["true"], schedule="0 2 * * *"))
    crontask = Crontask(home, tasks, []).start()
    yield crontask
    crontask.stop()


ATTRIBUTES = {"refreshes": "data-refreshes", "refreshesHeld": "data-refreshes-held"}


def counter(page: Any, name: str) -> int:
    value = page.get_attribute("html", ATTRIBUTES[name])
    return int(value or 0)


def tick_until(page: Any, name: str, above: int) -> None:
    """Move the fake clock past one refresh, and wait for the script to count ``name`` (a CSS
    selector: the page's policy allows no script of the test's to be evaluated in a loop)."""
    page.clock.run_for(PAST_A_REFRESH)
    attribute = ATTRIBUTES[name]
    page.wait_for_selector(f'html[{attribute}]:not([{attribute}="{above}"])', state="attached")
    assert counter(page, name) > above


def mark(page: Any, selector: str) -> None:
    """Tag the element ``selector`` finds: a refresh replaces it with an untagged copy."""
    page.eval_on_selector(selector, "e => { e.dataset.mark = 'before'; }")


def marked(page: Any, selector: str) -> bool:
    found: bool = page.eval_on_selector(selector, "e => e.dataset.mark === 'before'")
    return found


@pytest.mark.slow
def test_a_focused_link_keeps_its_focus_and_the_refresh_resumes_after(
    page: Any, app: Crontask
) -> None:
    page.goto(f"{app.server}/")
    page.focus(LINK)
    mark(page, LINK)
    held = counter(page, "refreshesHeld")
    tick_until(page, "refreshesHeld", held)
    assert counter(page, "refreshes") == 0  # held, not done
    assert page.evaluate("document.activeElement.dataset.mark") == "before"  # the same link
    assert marked(page, LINK)

    page.evaluate("document.activeElement.blur()")
    tick_until(page, "refreshes", 0)
    assert not marked(page, LINK)  # the list was refreshed
    assert page.locator("#stale").count() == 0


def test_a_link_clicked_open_in_a_new_tab_does_not_hold_the_refresh(
    page: Any, app: Crontask
) -> None:
    """Ctrl+click opens the task in a new tab and leaves the focus on the link, but a mouse put
    it there, not a keyboard: the list refreshes (it was held for good)."""
    page.goto(f"{app.server}/")
    mark(page, LINK)
    with page.context.expect_page() as opened:
        page.click(LINK, modifiers=["Control"])
    opened.value.close()
    tick_until(page, "refreshes", 0)
    assert not marked(page, LINK)


def test_a_selection_in_the_list_holds_the_refresh_until_it_is_gone(
    page: Any, app: Crontask
) -> None:
    page.goto(f"{app.server}/")
    mark(page, LINK)
    page.eval_on_selector(
        LINK,
        """e => { const r = document.createRange(); r.selectNodeContents(e);
                  getSelection().removeAllRanges(); getSelection().addRange(r); }""",
    )
    tick_until(page, "refreshesHeld", 0)
    assert page.evaluate("getSelection().toString()") == "default/kept"
    assert marked(page, LINK)
    # Held long enough, the page says so (its clock in UTC), and goes on holding.
    for _ in range(6):
        tick_until(page, "refreshesHeld", counter(page, "refreshesHeld"))
    text = page.inner_text("#stale")
    assert re.fullmatch(
        r"Not refreshed since \d\d:\d\d:\d\d UTC \(held while you are on it: click elsewhere "
        r"to resume\): what this page shows may be out of date\.",
        text,
    ), text
    assert counter(page, "refreshes") == 0

    page.evaluate("getSelection().removeAllRanges()")
    tick_until(page, "refreshes", 0)
    assert not marked(page, LINK)
    page.wait_for_selector("#stale", state="detached")


@pytest.mark.slow
def test_the_history_filter_is_outside_the_refresh_and_the_history_refreshes(
    page: Any, app: Crontask
) -> None:
    page.goto(f"{app.server}/tasks/default/kept")
    assert page.locator("#live select, [data-live] select").count() == 0
    status = 'select[name="status"]'
    page.focus(status)
    mark(page, status)
    mark(page, "#live-history table")
    tick_until(page, "refreshes", 0)  # not held: the focus is outside every live region
    assert counter(page, "refreshesHeld") == 0
    assert not marked(page, "#live-history table")  # the history was refreshed
    assert page.evaluate("document.activeElement.dataset.mark") == "before"  # the same select
    page.select_option(status, "failed")  # and it still filters
    page.wait_for_url("**/tasks/default/kept?status=failed")
    page.wait_for_selector("#live-history td.empty:has-text('with status failed')")
