"""One task's answer, and the status page's pages, while the runs table is locked: they answer
within ``store_calls.LIST_READ_WAIT`` what they answer of a store that is down, and a read the
lock holds is not joined by another. They used to wait for the lock: a ``LOCK TABLE`` (a
migration, a ``VACUUM FULL``, a psql session left in its transaction) held
``GET /api/v1/tasks/{key}``, a task's page and, after a restart, the task list, for as long as
it was held. The real PostgreSQL of CRONTASK_TEST_POSTGRES_URL, locked from another session;
the real service (``tests.api.test_task_list_replicas.Replica``, without replicas), API and
page; a run is a real command."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from reconciler import web
from reconciler.api.app import create_app
from reconciler.core.runs import RunRecord
from reconciler.sinks.metrics import Metrics
from reconciler.store import RunStore, open_store
from tests.api.conftest import TestClient
from tests.api.test_task_list_replicas import TASKS, Replica, tasks
from tests.helpers import wait_for
from tests.store.conftest import pg_admin, pg_url

pytestmark = pytest.mark.postgres

__all__ = ["pg_admin", "pg_url", "tasks"]  # the fixtures, shared with the suites they are of

T = TypeVar("T")
# Generous: an answer comes in about a second; without the bound, once the lock is let go.
PATIENCE = 20.0
HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser sends
KEY = TASKS[0]
_WAITING = sa.text(
    "SELECT count(*) FROM pg_locks WHERE relation = 'runs'::regclass AND NOT granted"
)


class Crontask:
    """``crontask run`` without replicas on the PostgreSQL of ``url``: the service, its API
    and its status page; ``restarted`` a second one on the same database."""

    def __init__(self, url: str, tasks: Path, state: Path) -> None:
        self._url, self._tasks, self._state = url, tasks, state
        self._made: list[tuple[Replica, RunStore]] = []
        self.replica = self.restarted()

    def restarted(self) -> Replica:
        store = open_store(self._url, writer=True)
        replica = Replica(None, self._tasks, store, self._state / str(len(self._made)))
        self._made.append((replica, store))
        return replica

    def close(self) -> None:
        for replica, store in self._made:
            replica.stop()
            store.close()


@pytest.fixture
def crontask(pg_url: str, tasks: Path, tmp_path: Path) -> Iterator[Crontask]:
    made = Crontask(pg_url, tasks, tmp_path)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def other_session(pg_url: str) -> Iterator[Engine]:
    """Connections of another client of the database (not the store's pool)."""
    engine = sa.create_engine(pg_url)
    yield engine
    engine.dispose()


def get(replica: Replica, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    app = web.install(create_app(replica.service, auth=None, metrics=Metrics()))
    with TestClient(app, raise_server_exceptions=False) as client:
        answer: httpx.Response = client.get(path, headers=headers or {})
    return answer


def while_locked(other: Engine, ask: Callable[[], T]) -> T:
    """``ask``'s answer, asked while another session holds ``runs`` locked; the lock is let go
    only once it came (or PATIENCE passed: TimeoutError, it waited for the lock)."""
    with other.connect() as holder, ThreadPoolExecutor(1) as pool:
        holder.execute(sa.text("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE"))
        asked = pool.submit(ask)
        try:
            return asked.result(timeout=PATIENCE)
        finally:
            holder.rollback()  # the answer came, or the test failed: the lock is let go


def assert_unavailable(answer: httpx.Response, *, page: bool) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    if page:
        assert answer.headers["content-type"].startswith("text/html"), answer.text
        assert "<h1>Service Unavailable</h1>" in answer.text
    else:
        assert answer.headers["content-type"] == "application/problem+json"
    assert "the run store is temporarily unavailable" in answer.text


def test_a_tasks_answer_does_not_wait_for_a_locked_table(
    crontask: Crontask, other_session: Engine
) -> None:
    """The API's 503 problem, then the status page's 503 page at once (the read the lock holds
    is not asked again, nor joined: one read waits for the lock); the task again, with its
    last run, once the lock is let go."""
    replica = crontask.replica
    ran = replica.run(KEY)

    def ask() -> tuple[httpx.Response, httpx.Response, int]:
        first = get(replica, f"/api/v1/tasks/{KEY}")
        with other_session.connect() as watch:
            wait_for("the read to wait for the lock", lambda: waiting(watch) >= 1)
            page = get(replica, f"/tasks/{KEY}", headers=HTML)
            return first, page, waiting(watch)

    first, page, reads_held = while_locked(other_session, ask)
    assert_unavailable(first, page=False)
    assert_unavailable(page, page=True)
    assert reads_held == 1
    assert wait_for("the task's last run", lambda: last_run_id(replica)) == ran.id


def test_the_list_after_a_restart_does_not_wait_for_a_locked_table(
    crontask: Crontask, other_session: Engine
) -> None:
    """Restarted, this crontask reads its tasks' last runs from the store as it lists them
    (``Service._stored_lasts``): with the table locked, the list answers, without them (none ended
    here yet), as with a store that is down; the status page's list says the runs are
    unavailable. Once the lock is let go, the list shows the run."""
    ran = crontask.replica.run(KEY)
    restarted = crontask.restarted()

    def ask() -> tuple[httpx.Response, httpx.Response]:
        return get(restarted, "/api/v1/tasks"), get(restarted, "/", headers=HTML)

    listed, page = while_locked(other_session, ask)
    assert listed.status_code == 200, listed.text
    assert {item["key"]: item["lastRun"] for item in listed.json()["items"]}[KEY] is None
    assert page.status_code == 200, page.text
    assert f'data-task="{KEY}"' in page.text
    assert 'class="banner store-down"' in page.text

    def shown() -> str | None:
        items = get(restarted, "/api/v1/tasks").json()["items"]
        last = {item["key"]: item["lastRun"] for item in items}[KEY]
        return None if last is None else str(last["id"])

    assert wait_for("the run in the list", shown) == ran.id


def test_a_runs_page_does_not_wait_for_a_locked_table(
    crontask: Crontask, other_session: Engine
) -> None:
    ran: RunRecord = crontask.replica.run(KEY)
    page = while_locked(
        other_session, lambda: get(crontask.replica, f"/runs/{ran.id}", headers=HTML)
    )
    assert_unavailable(page, page=True)
    assert wait_for(
        "the run's page",
        lambda: get(crontask.replica, f"/runs/{ran.id}", headers=HTML).status_code == 200,
    )


def waiting(watch: sa.Connection) -> int:
    """How many reads of ``runs`` wait for its lock (``watch``: another session)."""
    count = int(watch.execute(_WAITING).scalar_one())
    watch.rollback()
    return count


def last_run_id(replica: Replica) -> str | None:
    answer = get(replica, f"/api/v1/tasks/{KEY}")
    if answer.status_code != 200:
        return None
    last = answer.json()["lastRun"]
    return None if last is None else str(last["id"])


@pytest.mark.slow
def test_the_runs_pages_do_not_wait_for_a_locked_table(
    crontask: Crontask, other_session: Engine
) -> None:
    """The API's runs, one run's attempts and a run's output: each a thread of the server's
    while it waited, and 40 of them held every route. The output page within the page bound
    (``LIST_READ_WAIT``); the API's pages, whose cost grows with what is asked, within
    ``PAGE_READ_WAIT``."""
    replica = crontask.replica
    ran = replica.run(KEY)

    def ask() -> list[httpx.Response]:
        return [
            get(replica, f"/runs/{ran.id}/output"),
            get(replica, "/api/v1/runs?limit=1"),
            get(replica, f"/api/v1/runs/{ran.id}"),
        ]

    output, runs, run = while_locked(other_session, ask)
    assert output.status_code == 503, output.text
    assert_unavailable(runs, page=False)
    assert_unavailable(run, page=False)

    def listed() -> httpx.Response | None:
        answer = get(replica, "/api/v1/runs?limit=1")
        return answer if answer.is_success else None

    assert wait_for("the runs again", listed).json()["items"][0]["id"] == ran.id
