"""A filtered task list reads the run store a bounded number of times, however many tasks
there are: the state filter decides from what the runtime holds and from one batched lookup
per chunk of tasks, never one query per task, and a page reads at most ``SCAN_MAX`` tasks.
The store's calls are counted here, not timed."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import pytest

from reconciler.api.app import create_app
from reconciler.controller.view import SourceRef
from reconciler.core.runs import RunStatus
from reconciler.sinks.metrics import Metrics
from reconciler.store.base import RunStore
from reconciler.web import install
from reconciler.web.views import PAGE_SIZE, SCAN_CHUNK, SCAN_MAX
from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime, record, view
from tests.web.conftest import NOW
from tests.web.test_pages import keys


class CountedStore:
    """The store, counting each call by method name."""

    def __init__(self, store: RunStore) -> None:
        self.inner = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted


class CountedRuntime(FakeRuntime):
    """``tasks`` tasks that have not run yet, after one whose last run (a failure) only the
    store knows of, as after a restart."""

    def __init__(self, tasks: int) -> None:
        template = view("t")
        super().__init__(
            [view("a-failing")]
            + [
                dataclasses.replace(
                    template,
                    key=f"default/t{i:05}",
                    source=SourceRef("file", f"tasks/t{i:05}.yaml:1:1"),
                )
                for i in range(tasks)
            ]
        )
        super().store.claim(record("default/a-failing", T0, RunStatus.FAILED))
        self.counted = CountedStore(super().store)

    @property
    def store(self) -> RunStore:
        return self.counted


def store_calls(tasks: int, query: str) -> tuple[int, list[str]]:
    runtime = CountedRuntime(tasks)
    app = install(create_app(runtime, auth=None, metrics=Metrics()), clock=lambda: NOW)
    with TestClient(app, raise_server_exceptions=True) as client:
        response = client.get("/?" + query)
    assert response.status_code == 200
    return sum(runtime.counted.calls.values()), keys(response.text)


@pytest.mark.parametrize("query", ["state=failing", "state=ok", "state=ok&q=t0", "q=zzz"])
def test_a_filtered_page_reads_the_store_as_often_for_many_tasks_as_for_few(query: str) -> None:
    few, shown = store_calls(SCAN_MAX + 1, query)
    many, _ = store_calls(3 * SCAN_MAX, query)
    assert few == many <= SCAN_MAX // SCAN_CHUNK + PAGE_SIZE, (few, many)
    if query == "state=failing":
        assert shown == ["default/a-failing"]  # known from the store alone
    if query.startswith("state=ok"):
        assert "default/a-failing" not in shown
        assert len(shown) == PAGE_SIZE


def test_a_page_that_read_its_share_of_tasks_offers_to_scan_on() -> None:
    runtime = CountedRuntime(3 * SCAN_MAX)
    app = install(create_app(runtime, auth=None, metrics=Metrics()), clock=lambda: NOW)
    with TestClient(app, raise_server_exceptions=True) as client:
        html = client.get("/?state=failing").text
        assert keys(html) == ["default/a-failing"]
        last_read = f"default/t{SCAN_MAX - 2:05}"  # a-failing, then t00000...
        assert f"after={last_read.replace('/', '%2F')}" in html
        following = client.get(f"/?state=failing&after={last_read}")
        assert following.status_code == 200
        assert keys(following.text) == []
        # That page read its share and found nothing: it says so, and offers to look on.
        assert f"No match among the {SCAN_MAX} tasks looked at on this page" in following.text
        assert "next page »" in following.text
        assert "No task matches these filters" not in following.text
