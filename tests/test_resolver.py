"""The loop crontask runs on resolves names in bounded daemon threads: a name whose lookup
hangs takes a few of them, never the others' turn, and the process's exit never waits for
it. ``socket.getaddrinfo`` is replaced by one that hangs for one name until released."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler import resolver

HANGS = "hangs.test"
ANSWER = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80))]


class FakeResolver:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.started: Counter[object] = Counter()
        self.full = threading.Event()  # PER_NAME lookups of HANGS under way
        self._lock = threading.Lock()

    def getaddrinfo(self, host: object, *args: Any, **kwargs: Any) -> list[Any]:
        with self._lock:
            self.started[host] += 1
            if self.started[host] == resolver.PER_NAME:
                self.full.set()
        if host == HANGS:
            self.release.wait(30)
        return ANSWER


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeResolver]:
    fake = FakeResolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    try:
        yield fake
    finally:
        fake.release.set()  # the abandoned threads end


def test_a_name_that_hangs_holds_a_few_threads_and_not_the_others(fake: FakeResolver) -> None:
    async def scenario() -> list[Any]:
        loop = asyncio.get_running_loop()
        stuck = [asyncio.ensure_future(loop.getaddrinfo(HANGS, 443)) for _ in range(10)]
        assert await asyncio.to_thread(fake.full.wait, 10)
        answer = await loop.getaddrinfo("elsewhere.test", 443)
        for lookup in stuck:
            lookup.cancel()
        return answer

    # Returns while PER_NAME lookups still hang: nothing on the way out waits for them.
    assert resolver.run(scenario()) == ANSWER
    assert not fake.release.is_set()
    assert fake.started[HANGS] == resolver.PER_NAME
    assert fake.started["elsewhere.test"] == 1


def test_a_caller_that_gives_up_keeps_its_threads_place_until_the_thread_ends(
    fake: FakeResolver,
) -> None:
    async def scenario() -> list[Any]:
        loop = asyncio.get_running_loop()
        first = [asyncio.ensure_future(loop.getaddrinfo(HANGS, 443)) for _ in range(8)]
        assert await asyncio.to_thread(fake.full.wait, 10)
        for lookup in first:
            lookup.cancel()
        # Every place is still held by a thread that hangs: no new thread for this name.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(loop.getaddrinfo(HANGS, 443), 0.2)
        assert fake.started[HANGS] == resolver.PER_NAME
        waiting = asyncio.ensure_future(loop.getaddrinfo(HANGS, 443))
        fake.release.set()  # the threads end and give their places back
        return await asyncio.wait_for(waiting, 10)

    assert resolver.run(scenario()) == ANSWER
    assert fake.started[HANGS] == resolver.PER_NAME + 1


def test_all_names_together_have_a_bound(
    fake: FakeResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every name hangs: IN_ALL threads at most, whatever the number of names.
    monkeypatch.setattr(socket, "getaddrinfo", _hang_all(fake))

    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        lookups = [
            asyncio.ensure_future(loop.getaddrinfo(f"n{i}.test", 80))
            for i in range(resolver.IN_ALL * 2)
        ]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*lookups), 0.3)
        return sum(fake.started.values())

    assert resolver.run(scenario()) == resolver.IN_ALL


def test_an_error_of_the_lookup_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)

    async def scenario() -> None:
        await asyncio.get_running_loop().getaddrinfo("nowhere.test", 80)

    with pytest.raises(socket.gaierror):
        resolver.run(scenario())


def _hang_all(fake: FakeResolver) -> Any:
    def getaddrinfo(host: object, *args: Any, **kwargs: Any) -> list[Any]:
        with fake._lock:
            fake.started[host] += 1
        fake.release.wait(30)
        return ANSWER

    return getaddrinfo


def test_a_lookup_whose_thread_cannot_start_gives_its_places_back(
    fake: FakeResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pids limit reached for a moment: "can't start new thread".
    real_start = threading.Thread.start
    failing = [True]

    def start(self: threading.Thread) -> None:
        if failing[0] and self.name == "crontask-resolver":
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)

    async def scenario() -> list[Any]:
        loop = asyncio.get_running_loop()
        for i in range(resolver.IN_ALL + 8):
            with pytest.raises(RuntimeError):
                await loop.getaddrinfo(f"n{i}.test", 80)
        failing[0] = False  # threads can be had again: every place is free
        return await asyncio.wait_for(loop.getaddrinfo("elsewhere.test", 80), 10)

    assert resolver.run(scenario()) == ANSWER
