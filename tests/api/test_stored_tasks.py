"""API-owned tasks as the API source stores them, through the real service and real files.

A task the API accepts is stored as UTF-8 YAML that reads back whole (an emoji is its 4 bytes,
not a 10-byte escape); a task whose stored YAML would be over the limit the API source reads is
a 413 and nothing is written (the previous version stays, in force); a stored file over that
limit is an error of its key, never a cut text; and a write that is not in force after its pass
is undone.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Collection, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from reconciler.api.app import create_app
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Reconciler
from reconciler.controller.service import Service
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sinks.metrics import Metrics
from reconciler.sources.api import (
    MAX_TEXT,
    ApiSource,
    ApiTaskFiles,
    TaskTooLarge,
    UnreadableText,
)
from reconciler.store import MemoryRunStore
from tests.api.conftest import TestClient
from tests.api.test_problems import assert_problem
from tests.helpers import local_actions, task_doc

T = TypeVar("T")
EMOJI = "😀"
JSON = {"content-type": "application/json"}


class LiveService:
    """The parts ``crontask run`` builds around the API source, in this process on an event
    loop of their own (the scheduler on a fake clock: nothing fires), and the API over them."""

    def __init__(self, root: Path, store: ApiTaskFiles | None = None, *, jobs: bool = True) -> None:
        self.root = root
        self.jobs = jobs  # whether it can create Kubernetes Jobs
        self.files = store or ApiTaskFiles(root)
        self.api = ApiSource(self.files)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.service = self.on_loop(self._build())

    async def _build(self) -> Service:
        store = MemoryRunStore()
        dispatcher = Dispatcher(store, owner="h:1:x", actions=local_actions())
        now = datetime.now(UTC)
        self.scheduler = MemoryScheduler(lambda key, at: None, now)
        self.reconciler = Reconciler([self.api], self.scheduler, dispatcher, allow_empty=True)
        await self.reconciler.run_pass(None)  # the first pass reads every stored task
        return Service(
            loop=self.loop,
            store=store,
            scheduler=self.scheduler,
            dispatcher=dispatcher,
            reconciler=self.reconciler,
            reconcile=self.reconciler.run_pass,
            api=self.api,
            sources=[self.api],
            jobs=self.jobs,
        )

    def on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def client(self) -> TestClient:
        return TestClient(
            create_app(self.service, auth=None, metrics=Metrics()), raise_server_exceptions=False
        )

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "api-tasks"


@pytest.fixture
def start(root: Path) -> Iterator[Callable[..., LiveService]]:
    started: list[LiveService] = []

    def make(files: ApiTaskFiles | None = None) -> LiveService:
        started.append(LiveService(root, files))
        return started[-1]

    yield make
    for instance in started:
        instance.stop()


def body(name: str, *args: str) -> bytes:
    """The JSON of a task, as a client would send it (non-ASCII as UTF-8, not escaped)."""
    return json.dumps(
        task_doc(name, command={"args": ["echo", *args]}), ensure_ascii=False
    ).encode()


def stored(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (temporary files included), by its path relative to it."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_an_emoji_task_is_stored_as_utf8_and_reads_back_whole(
    start: Callable[..., LiveService], root: Path
) -> None:
    app = start()
    # 524 KB: as YAML escapes, 1.4 MB. (One emoji less than the 32 Ki characters an argument
    # may hold: 32 Ki of them are 128 KiB and its NUL, more than the kernel gives one.)
    sent = body("big", *[EMOJI * 32767] * 4)
    with app.client() as client:
        created = client.put("/api/v1/tasks/default/big", content=sent, headers=JSON)
        assert created.status_code == 201, created.text
        got = client.get("/api/v1/tasks/default/big")
    assert got.status_code == 200
    assert got.json()["resource"]["spec"]["command"]["args"][1] == EMOJI * 32767
    assert got.headers["etag"] == created.headers["etag"]
    data = (root / "default" / "big.yaml").read_bytes()
    assert EMOJI.encode() * 32767 in data
    assert b"\\U0001F600" not in data
    assert len(sent) - 1000 < len(data) < len(sent) + 1000
    app.stop()

    again = start()  # a restart reads the same file: the same task, at the same version
    with again.client() as client:
        read = client.get("/api/v1/tasks/default/big")
    assert read.status_code == 200
    assert read.headers["etag"] == created.headers["etag"]
    assert [s.errors for s in again.service.sources()] == [0]


def test_a_task_too_large_as_stored_yaml_is_413_and_stores_nothing(
    start: Callable[..., LiveService], root: Path
) -> None:
    app = start()
    # 328 KB of JSON; as YAML each DEL character is the escape \x7F: 1.4 MB.
    over = body("big", *["\x7f" * 32768] * 10)
    assert len(over) < MAX_TEXT
    with app.client() as client:
        refused = client.put("/api/v1/tasks/default/big", content=over, headers=JSON)
        problem = assert_problem(refused, 413)
        assert "over the limit of 1 MiB" in problem["detail"]
        assert_problem(client.post("/api/v1/tasks", content=over, headers=JSON), 413)
        assert stored(root) == {}
        assert_problem(client.get("/api/v1/tasks/default/big"), 404)

        first = client.put("/api/v1/tasks/default/big", content=body("big", "v1"), headers=JSON)
        assert first.status_code == 201
        before = stored(root)
        assert_problem(client.put("/api/v1/tasks/default/big", content=over, headers=JSON), 413)
        assert stored(root) == before  # the previous version, and no temporary file
        kept = client.get("/api/v1/tasks/default/big")
    assert kept.json()["resource"]["spec"]["command"]["args"] == ["echo", "v1"]
    assert kept.headers["etag"] == first.headers["etag"]


def test_a_stored_file_over_the_limit_is_an_error_of_its_key_not_a_cut_text(
    start: Callable[..., LiveService], root: Path
) -> None:
    # What the escaping dump left behind: a valid task, but 1.4 MB of YAML.
    document = task_doc("big", command={"args": ["echo", *[EMOJI * 32767] * 4]})
    big = root / "default" / "big.yaml"
    big.parent.mkdir(parents=True)
    big.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    size = big.stat().st_size
    assert size > MAX_TEXT
    assert isinstance(ApiTaskFiles(root).load()["default/big"], UnreadableText)

    app = start()
    (source,) = app.service.sources()
    assert source.errors == 1
    (error,) = source.problems
    assert f"{big} is {size} bytes, over the limit of 1 MiB: not read" in error
    with app.client() as client:
        assert_problem(client.get("/api/v1/tasks/default/big"), 404)
        replaced = client.put("/api/v1/tasks/default/big", content=body("big"), headers=JSON)
        assert replaced.status_code == 200, replaced.text  # in place of the broken file
        assert [s.errors for s in app.service.sources()] == [0]
        assert client.delete("/api/v1/tasks/default/big").status_code == 204
    assert not big.exists()


def test_a_stored_file_that_is_not_utf8_is_an_error_of_its_key_not_a_guess(root: Path) -> None:
    stored = root / "default" / "latin.yaml"
    stored.parent.mkdir(parents=True)
    document = task_doc("latin", command={"args": ["echo", "café"]})
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    stored.write_bytes(text.encode("latin-1"))  # written by something else than crontask
    files = ApiTaskFiles(root)
    loaded = files.load()["default/latin"]
    assert isinstance(loaded, UnreadableText)
    assert loaded.reason == (
        f"the stored file {stored} is not UTF-8 (byte 0xe9): not read"
        " (PUT or DELETE the task to replace it)"
    )
    version = files.version("default/latin")
    stored.write_bytes(text.replace("café", "cafè").encode("latin-1"))
    assert files.version("default/latin") != version  # a change of the bytes is seen


class Unfaithful(ApiTaskFiles):
    """Files whose tasks naming ``poison`` do not read back (as a dump the reader cannot take
    would not): the write path must not leave them behind."""

    def load(self, keys: Collection[str] | None = None) -> dict[str, str | UnreadableText]:
        found = super().load(keys)
        return {k: "{broken" if "poison" in str(t) else t for k, t in found.items()}


def test_a_write_that_does_not_read_back_is_undone(
    start: Callable[..., LiveService], root: Path
) -> None:
    app = start(Unfaithful(root))
    with app.client() as client:
        fresh = client.put("/api/v1/tasks/default/new", content=body("new", "poison"), headers=JSON)
        assert_problem(fresh, 500)
        assert stored(root) == {}  # removed: no file that does not read back

        first = client.put("/api/v1/tasks/default/old", content=body("old", "v1"), headers=JSON)
        assert first.status_code == 201
        before = stored(root)
        changed = client.put(
            "/api/v1/tasks/default/old", content=body("old", "poison"), headers=JSON
        )
        assert_problem(changed, 500)
        assert stored(root) == before  # the previous text, restored
        kept = client.get("/api/v1/tasks/default/old")
    assert kept.json()["resource"]["spec"]["command"]["args"] == ["echo", "v1"]
    assert kept.headers["etag"] == first.headers["etag"]
    assert [s.errors for s in app.service.sources()] == [0]


def test_the_files_refuse_a_text_over_the_limit_and_never_read_one_cut(root: Path) -> None:
    files = ApiTaskFiles(root)
    with pytest.raises(TaskTooLarge, match="over the limit of 1 MiB"):
        files.write("default/big", "x" * (MAX_TEXT + 1))
    assert stored(root) == {}
    files.write("default/big", "é" * (MAX_TEXT // 2))  # 1 MiB of UTF-8 exactly: stored
    assert files.load() == {"default/big": "é" * (MAX_TEXT // 2)}

    path = root / "default" / "big.yaml"
    path.write_bytes(b"x" * (MAX_TEXT + 1))
    text = files.load()["default/big"]
    assert isinstance(text, UnreadableText)
    assert text.version == files.version("default/big") == files.versions()["default/big"]
    path.write_bytes(b"y" * (MAX_TEXT + 1))
    assert files.version("default/big") != text.version  # it moves when the bytes do
