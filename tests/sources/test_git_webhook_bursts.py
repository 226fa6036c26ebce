"""Fetches a webhook asks for are spaced (``git.HOOK_SPACING``): a signed delivery replayed
again and again makes one fetch at the end of the wait, not one after another, and that fetch
takes the newest push. A real bare remote; the wait is the test's to end."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest

from reconciler.aio import first_of
from reconciler.sources import git as git_source
from reconciler.sources.git import GitOptions, GitSource
from tests.sources.test_git import Remote, doc, isolated_git, remote

__all__ = ["isolated_git", "remote"]  # fixtures shared with test_git

T = TypeVar("T")


async def within(waiting: Awaitable[T]) -> T:
    """A hang fails the test instead of holding it (no bound on how soon things happen)."""
    return await asyncio.wait_for(waiting, 10)


def push(remote: Remote, name: str) -> str:
    remote.write(f"{name}.yaml", doc(name))
    return remote.commit()


def test_asks_within_the_wait_make_one_fetch_of_the_newest_push(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(git_source, "HOOK_SPACING", 3600.0, raising=False)
    first = push(remote, "a")
    source = GitSource(GitOptions(remote.url, interval=3600), tmp_path / "state")
    real_sync = source.sync
    waits: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        fetched: asyncio.Queue[str | None] = asyncio.Queue()  # the commit each fetch found
        holding, release, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
        a_fetch = asyncio.Event()

        def found(revision: str | None) -> None:
            fetched.put_nowait(revision)
            a_fetch.set()

        def sync() -> bool:
            changed = real_sync()
            loop.call_soon_threadsafe(found, source.status().attempted_revision)
            return changed

        async def hold_off(stop: asyncio.Event, seconds: float) -> None:
            waits.append(seconds)
            holding.set()
            await first_of(stop, release)

        monkeypatch.setattr(source, "sync", sync)
        monkeypatch.setattr(git_source, "_hold_off", hold_off, raising=False)
        watching = asyncio.create_task(source.watch(lambda _: None, lambda: None, stop))
        assert await within(fetched.get()) == first  # at start
        assert source.request_sync()
        assert await within(fetched.get()) == first  # the first ask: at once
        assert waits == []

        second = await asyncio.to_thread(push, remote, "b")
        a_fetch.clear()
        for _ in range(20):  # its delivery, replayed
            source.request_sync()
        await within(first_of(holding, a_fetch))
        assert fetched.empty(), "fetched again at once"
        assert holding.is_set()
        assert 0 < waits[0] <= 3600.0
        third = await asyncio.to_thread(push, remote, "c")
        source.request_sync()
        release.set()  # the wait is over
        assert await within(fetched.get()) == third  # one fetch, and of the newest push
        assert second != third

        holding.clear()
        release.clear()
        a_fetch.clear()
        source.request_sync()  # the next ask waits again: nothing was left wanted meanwhile
        await within(first_of(holding, a_fetch))
        assert fetched.empty()
        stop.set()
        await within(watching)
        assert fetched.empty()
        assert len(waits) == 2
        assert source.status().revision == third

    asyncio.run(scenario())
