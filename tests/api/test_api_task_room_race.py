"""Creates made at once in one crontask never take the API's tasks over their bounds: the
room a write needs is reserved, under one lock for every key, from its check until the write
is over, so writes in flight count as stored. (Across replicas the check stays one of what
each last read: README, *API-created tasks*.)

Every create is held at the store until all have either reached it or been refused: the
interleaving many requests at once produce, made every time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core import api_tasks
from reconciler.core.api_tasks import NoRoom
from reconciler.core.model import CronTask
from reconciler.sources.api import ApiTaskFiles
from tests.api.live_api import LiveApi, files_root
from tests.helpers import task_doc

WRITERS = 8
ROOM = 3  # tasks that fit
DEADLINE = 30.0


class Gate(ApiTaskFiles):
    """Files whose writes wait, once ``expected`` is set, until that many writers have each
    reached a write or been refused."""

    expected = 0

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.arrived = 0
        self.refused = 0
        self.changed = threading.Condition()

    def done(self) -> bool:
        return self.arrived + self.refused >= self.expected

    def count_refusal(self) -> None:
        with self.changed:
            self.refused += 1
            self.changed.notify_all()

    def write(self, key: str, text: str, *, expect: str | None = None) -> str:
        if self.expected:
            with self.changed:
                self.arrived += 1
                self.changed.notify_all()
                if not self.changed.wait_for(self.done, DEADLINE):
                    raise AssertionError("the writers did not all arrive")
        return super().write(key, text, expect=expect)


@pytest.fixture
def store(tmp_path: Path) -> Gate:
    return Gate(files_root(tmp_path))


@pytest.fixture
def live(store: Gate) -> Iterator[LiveApi]:
    instance = LiveApi(store, allow_empty=True)
    yield instance
    instance.stop()


@pytest.mark.parametrize("bound", ["count", "bytes"])
def test_creates_at_once_stay_within_the_bounds(
    live: LiveApi, store: Gate, monkeypatch: pytest.MonkeyPatch, bound: str
) -> None:
    tasks = [CronTask.model_validate(task_doc(f"r{i}", "race")) for i in range(WRITERS)]
    if bound == "count":
        monkeypatch.setattr(api_tasks, "MAX_TASKS", ROOM)
    else:  # one stored first; each task's YAML is as long: room for ROOM more and a half
        live.service.create_api_task(tasks.pop())
        one = _stored_size(store)
        monkeypatch.setattr(api_tasks, "MAX_TOTAL_BYTES", one * (ROOM + 1) + one // 2)
    store.expected = len(tasks)
    made: list[str] = []
    failures: list[BaseException] = []
    barrier = threading.Barrier(len(tasks))

    def create(task: CronTask) -> None:
        barrier.wait(DEADLINE)
        try:
            made.append(live.service.create_api_task(task).key)
        except NoRoom:
            store.count_refusal()
        except BaseException as exc:
            failures.append(exc)
            store.count_refusal()

    threads = [threading.Thread(target=create, args=(t,)) for t in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert not failures
    assert len(made) == ROOM, made
    assert len(ApiTaskFiles(store.root).load()) == ROOM + (bound == "bytes")


def _stored_size(store: ApiTaskFiles) -> int:
    texts = list(store.load().values())
    assert len(texts) == 1
    assert isinstance(texts[0], str)
    return len(texts[0].encode())
