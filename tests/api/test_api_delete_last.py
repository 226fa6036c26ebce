"""Deleting the last API-owned task takes it out of the schedule, though the empty-set guard is
on (``crontask run`` without ``--allow-empty``) and the folder source beside it is empty: a
DELETE is deliberate. A store that cannot be read is never an empty read: the pass fails and
every task stays in force."""

from __future__ import annotations

import shutil
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

from reconciler.sources.api import ApiTaskFiles, UnreadableText
from reconciler.sources.files import DirectorySource
from reconciler.store import StoreUnavailable
from tests.api.live_api import LiveApi, files_root
from tests.helpers import task_doc


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    return tasks


@pytest.fixture
def live(tmp_path: Path, folder: Path) -> Iterator[LiveApi]:
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)), others=[DirectorySource([folder])])
    yield instance
    instance.stop()


def test_deleting_the_last_task_removes_it_from_the_schedule(live: LiveApi) -> None:
    with live.client() as client:
        assert client.post("/api/v1/tasks", json=task_doc("tick")).status_code == 201
        assert live.scheduled() == {"default/tick": "api"}
        assert client.delete("/api/v1/tasks/default/tick").status_code == 204
        assert live.scheduled() == {}
        assert client.get("/api/v1/tasks/default/tick").status_code == 404
    assert live.resync().ok
    assert live.scheduled() == {}


def test_a_folder_of_api_tasks_gone_is_no_empty_read(live: LiveApi, tmp_path: Path) -> None:
    with live.client() as client:
        assert client.post("/api/v1/tasks", json=task_doc("a")).status_code == 201
        assert client.post("/api/v1/tasks", json=task_doc("b")).status_code == 201
    shutil.rmtree(files_root(tmp_path))  # an unmounted volume, a folder moved away
    assert live.resync().ok  # the other sources' changes are not held back
    assert live.scheduled() == {"default/a": "api", "default/b": "api"}
    (api,) = [s for s in live.service.sources() if s.location == "the API"]
    assert api.last_error is not None
    assert "stay in force" in api.last_error

    files_root(tmp_path).mkdir(parents=True)  # back, and empty: that is the user's doing
    assert live.resync().ok
    assert live.scheduled() == {}


def test_a_state_directory_never_written_to_reads_as_no_task(tmp_path: Path) -> None:
    files = ApiTaskFiles(files_root(tmp_path))
    assert files.load() == {}
    assert files.version("default/a") is None


class Unreachable(ApiTaskFiles):
    """A shared store whose database went away after the tasks were read."""

    down = False

    def load(self, keys: Collection[str] | None = None) -> dict[str, str | UnreadableText]:
        if self.down:
            raise StoreUnavailable("connection refused")
        return super().load(keys)


def test_a_store_that_cannot_be_read_keeps_every_task(tmp_path: Path, folder: Path) -> None:
    store = Unreachable(files_root(tmp_path))
    live = LiveApi(store, others=[DirectorySource([folder])])
    try:
        with live.client() as client:
            assert client.post("/api/v1/tasks", json=task_doc("a")).status_code == 201
        store.down = True
        assert live.resync().ok
        assert live.scheduled() == {"default/a": "api"}
    finally:
        live.stop()
