"""A task's long name wraps in the task list, in a real browser (Debian's chromium, headless,
driven by Playwright) against the real ``crontask run``: unbroken, a name of 63 characters
took some 60 % of the table's width, and the Source column, which breaks anywhere, was left a
tenth of it, its path in four lines. Skipped where chromium or Playwright is missing, as
tests/web/test_browser.py is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.web.chromium import chromium, page

pytestmark = [pytest.mark.e2e]
__all__ = ["chromium", "page"]  # fixtures, used by name

LONG = "a" * 63  # the longest name: one DNS-1123 label


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crontask]:
    home = tmp_path_factory.mktemp("layout")
    tasks = home / "tasks"
    tasks.mkdir()
    for name in (LONG, "hello"):
        path = tasks / f"{name[:8]}-{'deep' * 8}.yaml"
        path.write_text(task(name, ["true"], schedule="0 2 * * *"))
    crontask = Crontask(home, tasks, []).start()
    yield crontask
    crontask.stop()


def width(tab: Any, selector: str) -> float:
    box = tab.locator(selector).first.bounding_box()
    assert box is not None, selector
    return float(box["width"])


@pytest.mark.slow
def test_a_long_task_name_wraps_and_leaves_the_source_column_its_room(
    page: Any, app: Crontask
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{app.server}/")
    key = page.locator(f'tr[data-task="default/{LONG}"] td.key')
    assert key.inner_text().replace("\n", "") == f"default/{LONG}"  # whole, only wrapped
    table = width(page, "table.tasks")
    assert width(page, f'tr[data-task="default/{LONG}"] td.key') < 0.4 * table
    assert width(page, "table.tasks th:last-child") > 0.2 * table  # Source
    # Nothing past the window's right edge.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
