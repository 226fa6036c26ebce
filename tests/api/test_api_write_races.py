"""Another replica writes the key between this one's read and its write (the store's check
refuses the write). Without ``If-Match`` the request is unconditional for its caller: it reads
again and writes over (the last writer wins), never a 500 or a 412; with ``If-Match`` the
refusal is the caller's 412. A key that never settles is a 503 after a few tries.

The other replica is a store twin that writes just before the next write or removal reaches the
real files: the interleaving two replicas produce, made every time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from reconciler.controller import api_writes
from reconciler.sources.api import ApiTaskFiles
from tests.api.live_api import LiveApi, files_root
from tests.api.test_problems import assert_problem
from tests.helpers import task_doc

KEY = "default/a"


def text(*args: str) -> str:
    document = task_doc("a", command={"args": ["echo", *args]})
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


class Raced(ApiTaskFiles):
    """Files where another writer (``before``) acts just before each of the next ``times``
    writes or removals of this one."""

    before: Callable[[ApiTaskFiles], object] | None = None
    times = 0

    def _other(self) -> None:
        if self.before is not None and self.times > 0:
            self.times -= 1
            self.before(ApiTaskFiles(self.root))

    def write(self, key: str, text: str, *, expect: str | None = None) -> str:
        self._other()
        return super().write(key, text, expect=expect)

    def remove(self, key: str, *, expect: str | None = None) -> None:
        self._other()
        super().remove(key, expect=expect)


@pytest.fixture
def store(tmp_path: Path) -> Raced:
    return Raced(files_root(tmp_path))


@pytest.fixture
def live(store: Raced) -> Iterator[LiveApi]:
    instance = LiveApi(store, allow_empty=True)
    yield instance
    instance.stop()


def race(store: Raced, other: Callable[[ApiTaskFiles], object], times: int = 1) -> None:
    store.before, store.times = other, times


def stored_args(store: ApiTaskFiles) -> list[str]:
    """The command of what ``store`` holds for KEY (as its YAML reads back)."""
    stored = store.load()[KEY]
    assert isinstance(stored, str)
    args: list[str] = yaml.safe_load(stored)["spec"]["command"]["args"]
    return args


def doc(*args: str) -> dict[str, object]:
    return task_doc("a", command={"args": ["echo", *args]})


def test_a_create_beaten_by_another_is_a_replace_not_a_500(live: LiveApi, store: Raced) -> None:
    race(store, lambda other: other.write(KEY, text("other")))
    with live.client() as client:
        answer = client.put(f"/api/v1/tasks/{KEY}", json=doc("mine"))
        assert answer.status_code == 200, answer.text  # it replaced the other's
        assert answer.json()["resource"]["spec"]["command"]["args"] == ["echo", "mine"]
    assert stored_args(store) == ["echo", "mine"]
    assert answer.headers["etag"] == f'"{store.version(KEY)}"'


def test_a_replace_beaten_by_another_writes_over_it(live: LiveApi, store: Raced) -> None:
    with live.client() as client:
        assert client.put(f"/api/v1/tasks/{KEY}", json=task_doc("a")).status_code == 201
        race(store, lambda other: other.write(KEY, text("other")))
        answer = client.put(f"/api/v1/tasks/{KEY}", json=doc("mine"))
        assert answer.status_code == 200, answer.text
    assert stored_args(store) == ["echo", "mine"]


def test_a_replace_deleted_meanwhile_creates_it_again(live: LiveApi, store: Raced) -> None:
    with live.client() as client:
        assert client.put(f"/api/v1/tasks/{KEY}", json=task_doc("a")).status_code == 201
        race(store, lambda other: other.remove(KEY))
        answer = client.put(f"/api/v1/tasks/{KEY}", json=doc("mine"))
        assert answer.status_code == 201, answer.text
    assert stored_args(store) == ["echo", "mine"]


def test_with_if_match_a_write_beaten_by_another_is_412(live: LiveApi, store: Raced) -> None:
    with live.client() as client:
        etag = client.put(f"/api/v1/tasks/{KEY}", json=task_doc("a")).headers["etag"]
        race(store, lambda other: other.write(KEY, text("other")))
        answer = client.put(
            f"/api/v1/tasks/{KEY}",
            json=doc("mine"),
            headers={"If-Match": etag},
        )
        assert_problem(answer, 412, "version-mismatch")
    assert stored_args(store) == ["echo", "other"]


def test_a_delete_beaten_by_a_write_deletes_it_all_the_same(live: LiveApi, store: Raced) -> None:
    with live.client() as client:
        assert client.put(f"/api/v1/tasks/{KEY}", json=task_doc("a")).status_code == 201
        race(store, lambda other: other.write(KEY, text("other")))
        assert client.delete(f"/api/v1/tasks/{KEY}").status_code == 204
    assert store.load() == {}
    assert live.scheduled() == {}


def test_with_if_match_a_delete_beaten_by_a_write_is_412(live: LiveApi, store: Raced) -> None:
    with live.client() as client:
        etag = client.put(f"/api/v1/tasks/{KEY}", json=task_doc("a")).headers["etag"]
        race(store, lambda other: other.write(KEY, text("other")))
        answer = client.delete(f"/api/v1/tasks/{KEY}", headers={"If-Match": etag})
        assert_problem(answer, 412, "version-mismatch")
    assert stored_args(store) == ["echo", "other"]


def test_a_delete_beaten_by_a_delete_is_404(live: LiveApi, store: Raced) -> None:
    with live.client() as client:
        assert client.put(f"/api/v1/tasks/{KEY}", json=task_doc("a")).status_code == 201
        race(store, lambda other: other.remove(KEY))
        assert_problem(client.delete(f"/api/v1/tasks/{KEY}"), 404)
    assert live.scheduled() == {}


def test_a_key_that_never_settles_is_503_not_412(live: LiveApi, store: Raced) -> None:
    count = iter(range(100))
    race(store, lambda other: other.write(KEY, text(f"other {next(count)}")), times=100)
    with live.client() as client:
        answer = client.put(f"/api/v1/tasks/{KEY}", json=task_doc("a"))
        assert_problem(answer, 503)
        assert answer.headers["retry-after"] == "5"
    assert next(count) == api_writes.WRITE_ATTEMPTS  # bounded: one beaten write per attempt
