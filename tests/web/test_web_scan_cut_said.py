"""A filtered task list that stopped searching at ``SCAN_MAX`` tasks says so, whatever it
found: a page of three failing tasks among the first 2000 of 3000 said "3 tasks shown" and
offered a next page, but not that the tasks past the 2000th were not searched yet (it said
so only when it had found none). A page that ends because it is full, or because no task is
left, says nothing of the kind."""

from __future__ import annotations

import re

from reconciler.api.app import create_app
from reconciler.core.runs import RunStatus
from reconciler.sinks.metrics import Metrics
from reconciler.web import install
from reconciler.web.views import PAGE_SIZE, SCAN_MAX
from tests.api.conftest import TestClient
from tests.api.fakes import T0, record
from tests.web.conftest import NOW
from tests.web.test_filter_scan import CountedRuntime
from tests.web.test_pages import keys

SEARCHED = re.compile(r"searched the (first|next) (\d+) tasks; the next page searches on")


def pages(tasks: int, *queries: str, failing: range = range(0)) -> list[str]:
    runtime = CountedRuntime(tasks)  # a-failing, then t00000... that never ran
    for n in failing:  # and these failed
        runtime.store.claim(record(f"default/t{n:05}", T0, RunStatus.FAILED))
    app = install(create_app(runtime, auth=None, metrics=Metrics()), clock=lambda: NOW)
    with TestClient(app, raise_server_exceptions=True) as client:
        return [client.get("/?" + query).text for query in queries]


def test_a_page_that_stopped_searching_says_how_far_it_searched() -> None:
    last_read = f"default/t{SCAN_MAX - 2:05}"  # a-failing, then t00000 to t01998
    failing, text, following = pages(
        SCAN_MAX + 500, "state=failing", "q=t0001", f"q=t0001&after={last_read}"
    )
    assert keys(failing) == ["default/a-failing"]
    assert "1 task shown" in failing
    assert SEARCHED.findall(failing) == [("first", str(SCAN_MAX))]
    assert len(keys(text)) == 10  # t00010 to t00019
    # A search is the runtime's, before any view is made: it looks through every task.
    assert SEARCHED.findall(text) == []
    # The next page found the rest of the tasks (500) and no more: nothing left to say.
    assert keys(following) == []
    assert SEARCHED.findall(following) == []
    assert "No task matches these filters" in following


def test_a_later_page_that_stopped_says_it_searched_the_next_tasks() -> None:
    last_read = f"default/t{SCAN_MAX - 2:05}"
    (shown,) = pages(3 * SCAN_MAX, f"state=failing&after={last_read}", failing=range(2500, 2510))
    assert len(keys(shown)) == 10  # t02500 to t02509, among t01999 to t03998
    assert SEARCHED.findall(shown) == [("next", str(SCAN_MAX))]


def test_a_full_page_or_the_last_says_nothing_of_a_search_cut() -> None:
    (full,) = pages(SCAN_MAX + 500, "q=t0")
    assert len(keys(full)) == PAGE_SIZE
    (last,) = pages(100, "state=failing")
    assert SEARCHED.findall(full) == []
    assert keys(last) == ["default/a-failing"]
    assert SEARCHED.findall(last) == []


def test_a_search_that_read_the_last_task_at_its_bound_offers_no_next_page() -> None:
    """Exactly ``SCAN_MAX`` tasks: the search read them all, and said it had stopped, with a
    next page that found nothing ("No task matches these filters")."""
    (shown,) = pages(SCAN_MAX - 1, "state=failing")  # a-failing and t00000 to t01998
    assert keys(shown) == ["default/a-failing"]
    assert SEARCHED.findall(shown) == []
    assert "next page" not in shown
    (none,) = pages(SCAN_MAX - 1, "state=running")
    assert keys(none) == []
    assert "No task matches these filters" in none
    assert "next page" not in none
