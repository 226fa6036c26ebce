"""The task list with replicas (``--ha``): a task another replica runs ends there, so the list
of this one showed it as never run (or as the last run it saw end before a handover). It shows
what the shared store has, read for a page's tasks of other replicas in one query (a read a
task made a list of 10 000 tasks 6 to 15 times as slow), and what this replica saw end when the
store does not answer within a bound (``store_calls.LIST_READ_WAIT``; a table lock held it 29 s).
Two replicas in this process share one SQLite file, as two processes would; each runs its own
tasks from one folder, and a run is a real command."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from reconciler.api.app import create_app
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Reconciler
from reconciler.controller.service import Service
from reconciler.core.assignment import Assignment
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sinks.metrics import Metrics
from reconciler.sources.api import ApiSource, ApiTaskFiles
from reconciler.sources.base import Source
from reconciler.sources.files import DirectorySource
from reconciler.store import RunStore, StoreUnavailable, open_store, sqlite_url
from tests.api.conftest import TestClient
from tests.helpers import local_actions, task_doc, wait_for

T = TypeVar("T")
MEMBERS = ("replica-a", "replica-b")
TASKS = [f"ops/t{n:02d}" for n in range(12)]


class Replica:
    """What ``crontask run --ha`` builds around the API, in this process on an event loop of
    its own: the folder of tasks, the shared store, the real dispatcher (a run is a command),
    the scheduler on a fake clock (nothing fires by itself). ``me``: its member id, or None
    for a crontask without replicas."""

    def __init__(self, me: str | None, tasks: Path, store: RunStore, state: Path) -> None:
        self.me = me
        self.store = store
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.service = self.on_loop(self._build(tasks, state))

    async def _build(self, tasks: Path, state: Path) -> Service:
        api = ApiSource(ApiTaskFiles(state / "api-tasks"))
        sources: list[Source] = [api, DirectorySource([tasks])]
        dispatcher = Dispatcher(self.store, owner=f"h:1:{self.me}", actions=local_actions())
        self.scheduler = MemoryScheduler(lambda key, at: None, datetime.now(UTC))
        self.reconciler = Reconciler(sources, self.scheduler, dispatcher, allow_empty=True)
        if self.me is not None:
            self.reconciler.assign(Assignment(MEMBERS, self.me), {})
        await self.reconciler.run_pass(None)
        return Service(
            loop=self.loop,
            store=self.store,
            scheduler=self.scheduler,
            dispatcher=dispatcher,
            reconciler=self.reconciler,
            reconcile=self.reconciler.run_pass,
            api=api,
            sources=sources,
        )

    def on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def client(self) -> TestClient:
        app = create_app(self.service, auth=None, metrics=Metrics())
        return TestClient(app, raise_server_exceptions=False)

    def listed(self, **params: Any) -> dict[str, Any]:
        """Each listed task's last run (None: never run), as the API answers it."""
        with self.client() as client:
            answer = client.get("/api/v1/tasks", params=params)
        assert answer.status_code == 200, answer.text
        return {item["key"]: item["lastRun"] for item in answer.json()["items"]}

    def one(self, key: str) -> Any:
        with self.client() as client:
            return client.get(f"/api/v1/tasks/{key}").json()["lastRun"]

    def owns(self, key: str) -> bool:
        return key in self.scheduler.owned()

    def run(self, key: str) -> RunRecord:
        """A manual run of ``key`` here, waited for until this replica's list shows it ended
        (its record is in the shared store by then)."""
        started = self.service.trigger(key).record

        def ended() -> RunRecord | None:
            last = self.store.latest(key)
            shown = self.listed().get(key)
            done = last is not None and last.id == started.id and last.status.finished
            return last if done and shown is not None and shown["id"] == started.id else None

        return wait_for(f"the run of {key} to end on {self.me}", ended)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def tasks(tmp_path: Path) -> Path:
    folder = tmp_path / "tasks"
    folder.mkdir()
    docs = [task_doc(key.split("/")[1], key.split("/")[0]) for key in TASKS]
    (folder / "tasks.yaml").write_text(yaml.safe_dump_all(docs))
    return folder


@pytest.fixture
def replicas(tmp_path: Path, tasks: Path) -> Iterator[tuple[Replica, Replica]]:
    """Two replicas sharing one SQLite file, each with a store of its own (a connection pool,
    as each process has)."""
    url = sqlite_url(tmp_path / "shared")
    made: list[Replica] = []
    try:
        for me in MEMBERS:
            store = open_store(url, writer=True)
            made.append(Replica(me, tasks, store, tmp_path / me))
        a, b = made
        yield a, b
    finally:
        for replica in made:
            replica.stop()
            replica.store.close()


def split(a: Replica, b: Replica) -> tuple[str, str]:
    """A task of each replica (every task is one's or the other's)."""
    assert all(a.owns(key) != b.owns(key) for key in TASKS)
    return next(k for k in TASKS if a.owns(k)), next(k for k in TASKS if b.owns(k))


def test_each_replica_lists_the_others_tasks_last_run_from_the_shared_store(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    of_a, of_b = split(a, b)
    ran_a, ran_b = a.run(of_a), b.run(of_b)
    for replica in (a, b):
        shown = replica.listed()
        for run in (ran_a, ran_b):
            assert shown[run.task] is not None, (replica.me, run.task)
            assert shown[run.task]["id"] == run.id
            assert shown[run.task]["status"] == RunStatus.SUCCEEDED.value
            assert shown[run.task]["completionTime"] is not None
            assert replica.one(run.task)["id"] == run.id  # the list and one task's page agree
        assert [k for k, last in shown.items() if last is None] == sorted(set(TASKS) - {of_a, of_b})
    # A later run on the other replica replaces it: the store is read at each listing.
    again = b.run(of_b)
    assert a.listed()[of_b]["id"] == again.id


def test_a_page_costs_one_read_of_the_store_for_the_other_replicas_tasks(
    replicas: tuple[Replica, Replica], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = replicas
    asked = count_reads(a.store, monkeypatch)
    assert a.listed(limit=5)
    assert len(asked) == 1
    # The tasks of the page, and the one after it (the API looks whether more follow): the
    # other replica's, and this one's own, never looked for since it started.
    assert set(asked[0]) == set(TASKS[:6])
    asked.clear()
    assert len(a.listed()) == len(TASKS)
    assert len(asked) == 1
    # Its own tasks once: those of the first page are not asked for again.
    assert set(asked[0]) == {k for k in TASKS if not a.owns(k) or k not in TASKS[:6]}
    asked.clear()
    assert len(a.listed()) == len(TASKS)
    assert len(asked) == 1
    assert set(asked[0]) == {k for k in TASKS if not a.owns(k)}


def test_a_store_that_fails_the_read_leaves_the_list_as_this_replica_saw_it(
    replicas: tuple[Replica, Replica], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list answers, with what ended here (a manual run of another replica's task runs
    here), and asks the store no more while it is made."""
    a, b = replicas
    _, of_b = split(a, b)
    here = a.run(of_b)
    later = b.run(of_b)
    assert a.listed()[of_b]["id"] == later.id
    asked: list[list[str]] = []

    def down(tasks: Collection[str]) -> dict[str, RunRecord]:
        asked.append(list(tasks))
        raise StoreUnavailable("the store does not answer")

    monkeypatch.setattr(a.store, "latest_many", down)
    shown = a.listed()
    assert shown[of_b]["id"] == here.id  # the run this replica saw end
    assert len(asked) == 1  # asked once for the whole list, not once a task


def test_without_replicas_the_list_reads_each_task_once(
    tmp_path: Path, tasks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its own tasks' last runs are read from the store once, together, while no run has
    ended here for them: then what ends here is the last run."""
    store = open_store(sqlite_url(tmp_path / "alone"), writer=True)
    alone = Replica(None, tasks, store, tmp_path / "alone")
    try:
        asked = count_reads(store, monkeypatch)
        ran = alone.run(TASKS[0])  # the list is asked for while the run goes, until it ends
        # The other tasks are read once, together. The run's end reaches the list from the
        # loop: until it does, its task is read again (as often as the list is asked for then,
        # which the machine's load decides), and only it.
        assert set(asked[0]) - {TASKS[0]} == set(TASKS[1:])
        assert all(read == [TASKS[0]] for read in asked[1:]), asked

        def read_nothing() -> bool:
            before = len(asked)
            return alone.listed()[TASKS[0]]["id"] == ran.id and len(asked) == before

        wait_for("the run's end to reach the list", read_nothing)
        reads = len(asked)
        assert alone.listed()[TASKS[0]]["id"] == ran.id
        assert len(asked) == reads  # from then on, the list reads nothing
    finally:
        alone.stop()
        store.close()


def count_reads(store: RunStore, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The tasks of each batched read of the last runs of ``store``."""
    asked: list[list[str]] = []
    real = store.latest_many

    def latest_many(tasks: Collection[str]) -> dict[str, RunRecord]:
        asked.append(list(tasks))
        return real(tasks)

    monkeypatch.setattr(store, "latest_many", latest_many)
    return asked


ANSWERED = 20.0  # how long a test waits for a list to answer while the store's read is held


class HeldReads:
    """The batched reads of ``store``'s last runs, each held until ``release`` is set (a table
    locked, a connection gone silent): ``asked`` the tasks of each read begun, ``ended`` set
    when a held read ends."""

    def __init__(self, store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.asked: list[list[str]] = []
        self.release = threading.Event()
        self.ended = threading.Event()
        real = store.latest_many

        def held(tasks: Collection[str]) -> dict[str, RunRecord]:
            self.asked.append(list(tasks))
            try:
                self.release.wait(ANSWERED * 3)
                return real(tasks)
            finally:
                self.ended.set()

        monkeypatch.setattr(store, "latest_many", held)


def test_a_store_that_does_not_answer_leaves_the_list_as_this_replica_saw_it(
    replicas: tuple[Replica, Replica], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read of the store that does not end (a table locked, a connection gone silent): the
    list answers within the read's bound, with the run that ended here; a list soon after, a
    page's next chunk or a client's next page, neither waits nor asks again while the read
    hangs; once it ended, the store is read again."""
    a, b = replicas
    _, of_b = split(a, b)
    here = a.run(of_b)
    later = b.run(of_b)
    held = HeldReads(a.store, monkeypatch)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(a.listed)
        try:
            shown = first.result(timeout=ANSWERED)  # TimeoutError: it waited for the store
            assert shown[of_b]["id"] == here.id  # the run this replica saw end
            again = a.listed(limit=5)  # the store's read still held
            assert of_b not in again or again[of_b]["id"] == here.id
            assert len(held.asked) == 1  # no second read, no second wait
        finally:
            held.release.set()  # the assertions made: the read may end (the pool joins it)
    assert held.ended.wait(ANSWERED)
    assert wait_for("the store read again", lambda: a.listed()[of_b]["id"] == later.id)
    assert len(held.asked) == 2
