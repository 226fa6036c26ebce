"""The pass a 412 has run first (the task changed outside crontask is read again, so that the
GET the answer asks for has the stored ETag) is waited for a short while only, the key's lock
held: behind a slow pass, the 412 that was instant waited ON_LOOP_TIMEOUT (30 s), and the
key's other writes waited meanwhile. Past TELLING_TIMEOUT the answer is the 412 all the same,
and the pass, the loop's to finish, has the key read once it is done.

The real app over the real service; the pass is held by the test until it lets it go, and
the wait for any other pass is made long (an hour), so that only the short bound can answer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from reconciler.controller import api_writes
from reconciler.controller.reconcile import PassResult
from reconciler.sources.api import ApiTaskFiles
from tests.api.live_api import LiveApi, files_root
from tests.helpers import task_doc, wait_for

PATH = "/api/v1/tasks/default/tick"


class HeldPasses:
    """The service's passes, each held until ``release``: a slow resync ahead of them."""

    def __init__(self, live: LiveApi) -> None:
        self._live = live
        self._real = live.service._writes._reconcile
        self._released = asyncio.Event()
        self.asked = threading.Event()

    async def __call__(self, hints: Mapping[str, Collection[str]]) -> PassResult:
        self.asked.set()
        await self._released.wait()
        return await self._real(hints)

    def release(self) -> None:
        self._live.loop.call_soon_threadsafe(self._released.set)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApi]:
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)), allow_empty=True)
    yield instance
    instance.stop()


def test_a_412_does_not_wait_out_a_slow_pass(
    live: LiveApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with live.client() as client:
        created = client.put(PATH, json=task_doc("tick", schedule="0 1 * * *"))
        assert created.status_code == 201, created.text
        stale = client.get(PATH).headers["etag"]
        file = files_root(tmp_path) / "default" / "tick.yaml"
        file.write_text(file.read_text().replace("0 1 * * *", "0 3 * * *"))  # by hand

        held = HeldPasses(live)
        monkeypatch.setattr(live.service._writes, "_reconcile", held)
        monkeypatch.setattr(api_writes, "ON_LOOP_TIMEOUT", 3600.0)
        monkeypatch.setattr(api_writes, "TELLING_TIMEOUT", 0.05, raising=False)

        def write() -> httpx.Response:
            mine = task_doc("tick", schedule="0 2 * * *")
            answer: httpx.Response = client.put(PATH, json=mine, headers={"If-Match": stale})
            return answer

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            try:
                first = pool.submit(write)
                wait_for("the pass the 412 asks for", lambda: held.asked.is_set())
                # Answered while the pass is still held, the key's lock free again: a second
                # write of the key is answered as well, not held behind the first.
                wait_for("the 412", first.done)
                second = pool.submit(write)
                wait_for("the second 412", second.done)
            finally:
                held.release()
        for answer in (first.result(), second.result()):
            assert answer.status_code == 412, answer.text
            assert "read it again" in answer.json()["detail"]

        # The pass, let go, reads the key: a GET gives the stored version, as the 412 says.
        wait_for("the stored version in force", lambda: client.get(PATH).headers["etag"] != stale)
        task = client.get(PATH).json()
        assert task["resource"]["spec"]["schedule"] == "0 3 * * *", task
