"""``aio.within`` waits a bounded time for a call and gives up on it without cancelling it (a
store call in a thread cannot be stopped), and ``aio.retrieved`` reads the outcome of what was
given up on, so asyncio reports no exception as "never retrieved". Real threads: each call
blocks in one until the test releases it."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from reconciler.aio import retrieved, within

PATIENCE = 10.0  # a bound on waits for work that takes milliseconds
SHORT = 0.05  # a wait that the held calls outlast


class Failed(Exception):
    pass


Reports = list[dict[str, Any]]


def run(scenario: Callable[[Reports], Coroutine[Any, Any, None]]) -> Reports:
    """Run ``scenario`` on a loop whose exception handler collects what asyncio reports
    (a future's exception never retrieved, a callback that raised); what it collected."""
    reports: Reports = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, report: reports.append(report))
        await scenario(reports)

    asyncio.run(main())
    return reports


def never_retrieved(reports: Reports) -> list[str]:
    return [r["message"] for r in reports if "never retrieved" in r["message"]]


def held(release: threading.Event, outcome: Callable[[], object]) -> Callable[[], object]:
    """A blocking call that waits for ``release``, then returns or raises as ``outcome``."""

    def call() -> object:
        assert release.wait(PATIENCE)
        return outcome()

    return call


def fail() -> object:
    raise Failed("the store said no")


async def until(what: str, condition: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def collected() -> None:
    """Let the loop run what the end of a call scheduled, then collect what nobody holds (a
    future's "never retrieved" report comes when it is collected)."""
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()


def test_the_result_passes_through() -> None:
    async def scenario(reports: Reports) -> None:
        assert await within(asyncio.to_thread(lambda: 42), PATIENCE) == 42
        loop = asyncio.get_running_loop()
        assert await within(loop.run_in_executor(None, lambda: "a future"), PATIENCE) == "a future"

    assert run(scenario) == []


def test_the_calls_exception_passes_through_even_a_timeout_error_of_its_own() -> None:
    async def scenario(reports: Reports) -> None:
        with pytest.raises(Failed, match="the store said no"):
            await within(asyncio.to_thread(fail), PATIENCE, TimeoutError("not this"))

        def socket_timeout() -> None:
            raise TimeoutError("the socket's own")

        # ``late`` is raised only when the wait ends: the call's own TimeoutError is its own.
        with pytest.raises(TimeoutError, match="the socket's own"):
            await within(asyncio.to_thread(socket_timeout), PATIENCE, Failed("not this"))

    assert run(scenario) == []


def test_on_timeout_the_call_goes_on_and_its_later_exception_is_retrieved() -> None:
    async def scenario(reports: Reports) -> None:
        loop = asyncio.get_running_loop()
        release = threading.Event()
        call = loop.run_in_executor(None, held(release, fail))
        with pytest.raises(TimeoutError, match=r"no answer within 0\.05s"):
            await within(call, SHORT)
        assert not call.done()  # not cancelled: it goes on in its thread
        release.set()
        await until("the call to end", call.done)
        # Ended with its own outcome (not read here: that is ``retrieved``'s to do).
        assert not call.cancelled()
        del call
        await collected()

    assert never_retrieved(run(scenario)) == []


def test_a_coroutine_given_up_on_is_not_reported_either() -> None:
    """A coroutine is wrapped in a task that nobody else holds: its exception would be logged
    as "Task exception was never retrieved" when the task is collected."""
    ended = threading.Event()

    async def scenario(reports: Reports) -> None:
        release = threading.Event()

        def call() -> object:
            try:
                return held(release, fail)()
            finally:
                ended.set()

        with pytest.raises(Failed, match="given up"):
            await within(asyncio.to_thread(call), SHORT, Failed("given up"))
        release.set()
        await until("the call to end", ended.is_set)
        current = asyncio.current_task()
        await until("its task to end", lambda: asyncio.all_tasks() == {current})
        await collected()

    assert never_retrieved(run(scenario)) == []
    assert ended.is_set()


def test_an_exception_nobody_retrieves_is_reported() -> None:
    """The check of the tests above can fail: the same call, given up on by a plain
    ``asyncio.wait`` (no ``retrieved``), is reported once collected."""

    async def scenario(reports: Reports) -> None:
        loop = asyncio.get_running_loop()
        release = threading.Event()
        call = loop.run_in_executor(None, held(release, fail))
        await asyncio.wait({call}, timeout=SHORT)
        release.set()
        await until("the call to end", call.done)
        del call
        await collected()

    assert never_retrieved(run(scenario)) == ["Future exception was never retrieved"]


def test_a_cancelled_waiter_leaves_the_call_running_and_retrieved() -> None:
    """The waiter's cancellation (its run stopped, the stop's own deadline) is its own: it
    propagates, and the call, which a thread holds, goes on, its outcome still there for
    whoever holds it and read when it comes."""

    async def scenario(reports: Reports) -> None:
        loop = asyncio.get_running_loop()
        release = threading.Event()
        call = loop.run_in_executor(None, held(release, fail))
        waiter = asyncio.create_task(within(call, PATIENCE))
        await asyncio.sleep(SHORT)
        assert not waiter.done()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not call.cancelled()
        release.set()
        await until("the call to end", call.done)
        assert not call.cancelled()
        del call
        await collected()

    assert never_retrieved(run(scenario)) == []


def test_a_call_that_ends_in_time_is_not_touched_by_a_cancelled_waiter() -> None:
    async def scenario(reports: Reports) -> None:
        release = threading.Event()
        call = asyncio.get_running_loop().run_in_executor(None, held(release, lambda: 7))
        waiter = asyncio.create_task(within(call, PATIENCE))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        release.set()
        assert await call == 7

    assert run(scenario) == []


def test_retrieved_reads_an_exception_and_takes_a_cancelled_future_calmly() -> None:
    async def scenario(reports: Reports) -> None:
        loop = asyncio.get_running_loop()
        failed: asyncio.Future[None] = loop.create_future()
        failed.add_done_callback(retrieved)
        failed.set_exception(Failed("nobody awaits this"))
        cancelled: asyncio.Future[None] = loop.create_future()
        cancelled.add_done_callback(retrieved)
        cancelled.cancel()  # a callback that raised would be reported
        succeeded: asyncio.Future[int] = loop.create_future()
        succeeded.add_done_callback(retrieved)
        succeeded.set_result(1)
        del failed, cancelled, succeeded
        await collected()

    assert run(scenario) == []
