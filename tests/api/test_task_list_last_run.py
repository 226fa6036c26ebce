"""The task list shows each task's last run from the run store, as one task's page does: after
a restart nothing has ended in this process yet (the list showed no last run until the task
ran again, an hourly task's for an hour), and with replicas another replica's tasks end there
(the list showed half the tasks as never run)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.sources.api import ApiTaskFiles
from reconciler.store import StoreUnavailable
from tests.api.live_api import LiveApi, files_root
from tests.helpers import task_doc

KEY = "ops/hourly"
BEFORE = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApi]:
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)), allow_empty=True)
    yield instance
    instance.stop()


def ran(at: datetime, status: RunStatus = RunStatus.SUCCEEDED) -> RunRecord:
    """A run recorded by the crontask before this one (never heard of by this process)."""
    return RunRecord(
        id=run_id(KEY, at),
        task=KEY,
        scheduled_at=at,
        trigger=Trigger.SCHEDULE,
        status=status,
        started_at=at,
        finished_at=at + timedelta(seconds=1),
        exit_code=0,
        owner="h:0:before",
    )


def listed_last_run(live: LiveApi) -> object:
    with live.client() as client:
        (item,) = client.get("/api/v1/tasks").json()["items"]
        one = client.get(f"/api/v1/tasks/{KEY}").json()
    ids = [None if run is None else run["id"] for run in (item["lastRun"], one["lastRun"])]
    assert ids[0] == ids[1]  # the list and one task's page agree
    return ids[0]


def test_the_list_shows_a_last_run_recorded_before_a_restart(live: LiveApi) -> None:
    with live.client() as client:
        created = client.post("/api/v1/tasks", json=task_doc("hourly", "ops"))
        assert created.status_code == 201, created.text
    live.service.store.save_many([ran(BEFORE)])  # by the crontask before this one
    assert listed_last_run(live) == run_id(KEY, BEFORE)


def test_a_run_that_ends_here_later_is_the_last(live: LiveApi) -> None:
    with live.client() as client:
        assert client.post("/api/v1/tasks", json=task_doc("hourly", "ops")).status_code == 201
    live.service.store.save_many([ran(BEFORE)])
    assert listed_last_run(live) == run_id(KEY, BEFORE)
    later = ran(BEFORE + timedelta(hours=1), RunStatus.FAILED)
    live.service.store.save_many([later])
    live.service._remember(later)  # as the dispatcher tells of a run that ended here
    assert listed_last_run(live) == later.id


def test_the_store_is_read_once_a_task_and_not_again_once_it_fails(
    live: LiveApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A list of thousands of tasks must not cost a query a task at each listing, nor wait
    for a store that does not answer task by task: the tasks of a page not looked for yet are
    read at once, once."""
    with live.client() as client:
        for name in ("a", "b", "c"):
            assert client.post("/api/v1/tasks", json=task_doc(name, "ops")).status_code == 201
    store = live.service.store
    asked: list[list[str]] = []
    real_latest_many = store.latest_many

    def latest_many(tasks: Collection[str]) -> dict[str, RunRecord]:
        asked.append(sorted(tasks))
        return real_latest_many(tasks)

    monkeypatch.setattr(store, "latest_many", latest_many)
    with live.client() as client:
        assert client.get("/api/v1/tasks").status_code == 200
        assert asked == [["ops/a", "ops/b", "ops/c"]]  # one read for the page
        asked.clear()
        assert client.get("/api/v1/tasks").status_code == 200
        assert asked == []  # each read once: none of them ran

    fresh = LiveApi(ApiTaskFiles(files_root(tmp_path)), allow_empty=True)  # a restart
    try:

        def down(tasks: Collection[str]) -> dict[str, RunRecord]:
            asked.append(sorted(tasks))
            raise StoreUnavailable("the store does not answer")

        monkeypatch.setattr(fresh.service.store, "latest_many", down)
        with fresh.client() as client:
            answer = client.get("/api/v1/tasks")
        assert answer.status_code == 200
        assert [item["lastRun"] for item in answer.json()["items"]] == [None] * 3
        assert len(asked) == 1  # not once a task
    finally:
        fresh.stop()
