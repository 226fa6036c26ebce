"""The controller's work queue: marks merge, failed work comes back after a backoff that
doubles, success resets it, and nothing marked is dropped. A fake clock drives the backoff."""

from __future__ import annotations

import asyncio

from reconciler.controller.queue import Work, WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_marks_of_the_same_kind_merge_into_one_pass() -> None:
    async def main() -> None:
        queue = WorkQueue()
        queue.add("file", {"/a.yaml"})
        queue.add("file", {"/b.yaml"})
        queue.add("kubernetes", {"ops/x"})
        work = await queue.get(asyncio.Event(), timeout=0)
        assert work == Work(
            False, {"file": frozenset({"/a.yaml", "/b.yaml"}), "kubernetes": frozenset({"ops/x"})}
        )
        assert not queue.pending
        assert await queue.get(asyncio.Event(), timeout=0) is None

    asyncio.run(main())


def test_failed_work_comes_back_merged_after_a_doubling_backoff() -> None:
    async def main() -> None:
        clock = Clock()
        queue = WorkQueue(base=1.0, cap=4.0, clock=clock)
        queue.add("file", {"/a.yaml"})
        first = await queue.get(asyncio.Event(), timeout=0)
        assert first is not None
        assert queue.retry(first) == 1.0
        queue.add("file", {"/b.yaml"})  # arrives while the failed work waits
        assert await queue.get(asyncio.Event(), timeout=0) is None  # not before the backoff
        clock.now += 1.0
        again = await queue.get(asyncio.Event(), timeout=0)
        assert again == Work(False, {"file": frozenset({"/a.yaml", "/b.yaml"})})
        assert queue.retry(again) == 2.0
        clock.now += 2.0
        third = await queue.get(asyncio.Event(), timeout=0)
        assert third is not None
        assert [queue.retry(third) for _ in range(3)] == [4.0, 4.0, 4.0]  # capped
        assert queue.failures == 5
        clock.now += 4.0
        fourth = await queue.get(asyncio.Event(), timeout=0)
        assert fourth is not None
        queue.done(fourth)
        assert queue.failures == 0
        queue.add("git")
        assert await queue.get(asyncio.Event(), timeout=0) == Work(False, {"git": frozenset()})

    asyncio.run(main())


def test_a_failed_resync_stays_a_resync() -> None:
    async def main() -> None:
        clock = Clock()
        queue = WorkQueue(base=1.0, clock=clock)
        queue.add_resync()
        work = await queue.get(asyncio.Event(), timeout=0)
        assert work is not None
        assert work.pass_hints is None
        queue.retry(work)
        clock.now += 1.0
        again = await queue.get(asyncio.Event(), timeout=0)
        assert again is not None
        assert again.resync

    asyncio.run(main())


def test_get_wakes_for_new_work_and_for_stop() -> None:
    async def main() -> None:
        queue = WorkQueue()
        stop = asyncio.Event()
        waiting = asyncio.ensure_future(queue.get(stop))
        await asyncio.sleep(0)
        assert not waiting.done()
        queue.add("file", {"/a.yaml"})
        assert await asyncio.wait_for(waiting, 5) == Work(False, {"file": frozenset({"/a.yaml"})})
        stopped = asyncio.ensure_future(queue.get(stop))
        await asyncio.sleep(0)
        stop.set()
        assert await asyncio.wait_for(stopped, 5) is None

    asyncio.run(main())
