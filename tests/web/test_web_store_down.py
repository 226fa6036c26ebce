"""The page with the run store down: a person's browser gets a page, never the API's JSON.

The task list is drawn from what the runtime holds (tasks, badges, schedules, next runs) with
the parts the store holds (the strips of the last runs) marked as unavailable; a page that is
all the store's (a task's history, a run), or a filter only the store can decide (ok,
failing), is the 503 problem said as a page, with Retry-After. The page's own refresh (and
any client that does not ask for HTML) still gets the problem, which the script shows as its
"Not refreshed since" banner."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.core.runs import run_id
from reconciler.store import MemoryRunStore, RunQuery, StoreUnavailable
from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime
from tests.web.conftest import PageFactory

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser sends


class SwitchedStore(MemoryRunStore):
    """A memory store that answers as a store that cannot be reached while ``down``."""

    down = False

    def _check_open(self) -> None:
        if self.down:
            raise StoreUnavailable("connection refused")
        super()._check_open()


@pytest.fixture
def store(runtime: FakeRuntime) -> SwitchedStore:
    switched = SwitchedStore()
    for record in runtime.store.query(RunQuery(limit=1000)).items:
        switched.claim(record)
    runtime._store = switched
    return switched


@pytest.fixture
def client(make_page: PageFactory, store: SwitchedStore) -> Iterator[TestClient]:
    with TestClient(make_page(), raise_server_exceptions=False) as c:
        yield c


def test_the_list_shows_the_tasks_with_the_runs_marked_unavailable(
    client: TestClient, store: SwitchedStore
) -> None:
    store.down = True
    answer = client.get("/", headers=HTML)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    html = answer.text
    assert 'data-task="default/hello"' in html
    assert 'data-task="ops/backup"' in html
    assert "every 5 minutes" in html  # the schedule, from the runtime
    assert 'class="banner store-down"' in html
    assert "The run store is not answering" in html
    row = html.split('data-task="default/hello"')[1].split("</tr>")[0]
    assert 'class="unavailable"' in row  # the strip's place says so, not "no runs yet"
    assert "no runs yet" not in row
    store.down = False
    assert "store-down" not in client.get("/", headers=HTML).text


@pytest.mark.parametrize(
    "path",
    ["/?state=failing", "/tasks/default/hello", f"/runs/{run_id('default/hello', T0)}"],
)
def test_a_page_all_of_the_store_is_a_503_page(
    client: TestClient, store: SwitchedStore, path: str
) -> None:
    store.down = True
    answer = client.get(path, headers=HTML)
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("text/html"), answer.text
    assert answer.headers["retry-after"] == "5"
    assert "<h1>Service Unavailable</h1>" in answer.text
    assert "the run store is temporarily unavailable" in answer.text
    # The page's refresh gets the problem (the script's banner says "status 503").
    refresh = client.get(path, headers={**HTML, "x-crontask-refresh": "1"})
    assert refresh.status_code == 503
    assert refresh.headers["content-type"] == "application/problem+json"


def test_a_timeout_is_a_503_page(
    client: TestClient, runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def late(key: str) -> None:
        raise TimeoutError("the loop did not answer")

    monkeypatch.setattr(runtime, "task", late)
    answer = client.get("/tasks/default/hello", headers=HTML)
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["retry-after"] == "5"
    assert "retry later" in answer.text
