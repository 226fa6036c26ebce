"""A task a file declares is not the API's to create, also when the file's pass has not come
yet: the API's definition wins a conflict (its location sorts first), so a create let through
took the file's task over for good. A create re-reads the other sources first (a file written
a moment ago, its watcher's event still on its way, is a 409); and a create whose own pass
finds the key declared by a file too (a pass of the folder came between the check and the
write) is undone, a 409 as well. A create whose pass could not read the API's stored tasks
(the store away a moment) stays stored and is a 503, not undone (undoing it lost the write)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

from reconciler.sources.api import ApiTaskFiles, UnreadableText
from reconciler.sources.files import DirectorySource
from tests.api.live_api import JSON, LiveApi, files_root
from tests.api.test_problems import assert_problem
from tests.api.test_stored_tasks import body
from tests.controller.test_reconcile import doc

KEY = "default/a"


class FolderWrittenBeforeStoring(ApiTaskFiles):
    """Files where, just before the next write, a file of the folder declares the key and the
    folder's own pass applies it (the interleaving a watcher's pass makes between the API's
    owner check and its write)."""

    live: LiveApi | None = None
    task_file: Path | None = None

    def write(self, key: str, text: str, *, expect: str | None = None) -> str:
        live, path = self.live, self.task_file
        if live is not None and path is not None:
            self.live = None
            path.write_text(doc("a"))
            live.on_loop(live.reconciler.run_pass({"file": {str(path.absolute())}}))
        return super().write(key, text, expect=expect)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    made = tmp_path / "tasks"
    made.mkdir()
    (made / "other.yaml").write_text(doc("other"))
    return made


@pytest.fixture
def store(tmp_path: Path) -> FolderWrittenBeforeStoring:
    return FolderWrittenBeforeStoring(files_root(tmp_path))


@pytest.fixture
def live(folder: Path, store: FolderWrittenBeforeStoring) -> Iterator[LiveApi]:
    instance = LiveApi(store, others=[DirectorySource([folder])])
    yield instance
    instance.stop()


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_create_of_a_key_a_file_declares_before_its_pass_is_a_409(
    live: LiveApi, folder: Path, store: ApiTaskFiles, method: str
) -> None:
    (folder / "a.yaml").write_text(doc("a"))  # no pass yet: its event is on its way
    with live.client() as client:
        url = "/api/v1/tasks" if method == "POST" else f"/api/v1/tasks/{KEY}"
        answer = client.request(method, url, content=body("a", "api"), headers=JSON)
        assert_problem(answer, 409, "owned-elsewhere")
    assert store.load([KEY]) == {}
    assert live.scheduled()[KEY] == "file"
    live.resync()
    assert live.scheduled()[KEY] == "file"
    assert not live.reconciler.desired.conflicts


def test_a_create_whose_pass_finds_the_key_declared_by_a_file_is_undone(
    live: LiveApi, folder: Path, store: FolderWrittenBeforeStoring
) -> None:
    store.live, store.task_file = live, folder / "a.yaml"
    with live.client() as client:
        answer = client.post("/api/v1/tasks", content=body("a", "api"), headers=JSON)
        assert_problem(answer, 409, "owned-elsewhere")
    assert store.live is None  # the folder's pass did come between
    assert store.load([KEY]) == {}
    live.resync()
    assert live.scheduled()[KEY] == "file"
    assert not live.reconciler.desired.conflicts


class UnreadOnce(ApiTaskFiles):
    """Files whose next full read after ``fail_next`` is set raises (a store away a moment)."""

    fail_next = False

    def load(self, keys: Collection[str] | None = None) -> dict[str, str | UnreadableText]:
        if self.fail_next:
            self.fail_next = False
            raise OSError("the store is away a moment")
        return super().load(keys)

    def write(self, key: str, text: str, *, expect: str | None = None) -> str:
        version = super().write(key, text, expect=expect)
        self.fail_next = True  # the pass that applies it cannot read it
        return version


def test_a_write_its_pass_cannot_read_stays_stored_and_is_not_in_force(tmp_path: Path) -> None:
    store = UnreadOnce(files_root(tmp_path))
    live = LiveApi(store, allow_empty=True)
    try:
        with live.client() as client:
            answer = client.post("/api/v1/tasks", content=body("a", "api"), headers=JSON)
            assert_problem(answer, 503, "not-in-force")
        assert KEY in store.load([KEY])  # kept: the next pass that reads it applies it
        live.resync()
        assert live.scheduled() == {KEY: "api"}
    finally:
        live.stop()
