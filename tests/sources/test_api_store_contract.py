"""The stores of API-owned tasks, one suite for both: files in the state directory and the
shared run store's table (PostgreSQL, for replicas). Writes state what they expect, and a store
checks it atomically: two writers of one key cannot both win."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reconciler.core.api_tasks import MISSING, AlreadyExists, VersionMismatch, version_of
from reconciler.sources.api import ApiSource, ApiTaskFiles, ApiTaskStore
from tests.helpers import task_doc
from tests.store.conftest import PG_ENV


@pytest.fixture(params=["files", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiTaskStore]:
    if request.param == "files":
        yield ApiTaskFiles(tmp_path / "api-tasks")
        return
    if not os.environ.get(PG_ENV):
        pytest.skip(f"set {PG_ENV}")
    from reconciler.store import open_store
    from reconciler.store.api_tasks import SqlApiTasks

    url: str = request.getfixturevalue("pg_url")
    open_store(url).close()
    made = SqlApiTasks.open(url)
    yield made
    made.engine.dispose()


def text(name: str, schedule: str = "* * * * *") -> str:
    return yaml.safe_dump(task_doc(name, schedule=schedule), sort_keys=False)


def test_write_read_version_remove(store: ApiTaskStore) -> None:
    assert store.version("default/a") is None
    version = store.write("default/a", text("a"), expect=MISSING)
    assert version == version_of(text("a")) == store.version("default/a")
    assert store.load() == {"default/a": text("a")}
    assert store.load(["default/a", "default/none"]) == {"default/a": text("a")}
    assert store.versions() == {"default/a": version}
    store.remove("default/a", expect=version)
    assert store.load() == {}
    with pytest.raises(KeyError):
        store.remove("default/a")


def test_expectations_are_checked(store: ApiTaskStore) -> None:
    first = store.write("default/a", text("a"))
    with pytest.raises(AlreadyExists):
        store.write("default/a", text("a", "@hourly"), expect=MISSING)
    second = store.write("default/a", text("a", "@hourly"), expect=first)
    with pytest.raises(VersionMismatch) as stale:
        store.write("default/a", text("a", "@daily"), expect=first)
    assert stale.value.current == second
    with pytest.raises(VersionMismatch):
        store.remove("default/a", expect=first)
    assert store.load()["default/a"] == text("a", "@hourly")


@pytest.mark.parametrize("key", ["default/../x", "Default/x", "default", "a/b/c", "x/" + "y" * 64])
def test_keys_that_are_not_two_labels_touch_nothing(store: ApiTaskStore, key: str) -> None:
    with pytest.raises(ValueError, match="task key"):
        store.write(key, "x")
    assert store.load() == {}


def test_concurrent_creates_of_one_key_have_one_winner(store: ApiTaskStore) -> None:
    if isinstance(store, ApiTaskFiles):
        pytest.skip("files are one process's: crontask serialises them with a lock per key")
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def create(i: int) -> None:
        start.wait()
        try:
            store.write("default/a", text("a", f"{i} * * * *"), expect=MISSING)
            outcomes.append("created")
        except AlreadyExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] + ["exists"] * 7


def test_the_source_reads_what_the_store_holds_and_sees_other_writers(
    store: ApiTaskStore,
) -> None:
    source = ApiSource(store)
    store.write("default/a", text("a"))
    assert source.refresh(None) == {"default/a"}
    assert [d.key for d in source.definitions()] == ["default/a"]
    assert source.changed() == set()
    # Another replica writes b and changes a: a poll of versions says which keys to re-read.
    store.write("default/b", text("b"))
    store.write("default/a", text("a", "@hourly"))
    assert source.changed() == {"default/a", "default/b"}
    assert source.refresh({"default/a", "default/b"}) == {"default/a", "default/b"}
    assert source.definitions_of(["default/a"])[0].task.spec.schedule == "@hourly"
    store.remove("default/b")
    assert source.refresh(source.changed()) == {"default/b"}
    assert source.errors() == []
