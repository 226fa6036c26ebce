"""Waiting on asyncio events and calls with a timeout, without leaking the waiters nor the
calls given up on; crontask's own threads for its blocking work."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# Enough for what may wait at once (a pass reading the sources, a git fetch, the API tasks'
# poll, the history reads of notifications) and still bounded.
INTERNAL_THREADS = 8

# One pool per loop, not per process: tests run several runtimes, one after another.
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ThreadPoolExecutor] = (
    weakref.WeakKeyDictionary()
)

# Called by a long-lived part once it serves (a watch armed, a first list done).
Ready = Callable[[], None]


async def first_of(*events: asyncio.Event, timeout: float | None = None) -> None:
    """Return when any of ``events`` is set, or after ``timeout`` seconds."""
    waiters = {asyncio.ensure_future(event.wait()) for event in events}
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def ended(task: asyncio.Future[Any]) -> asyncio.Event:
    """An event set when ``task`` is done (to wait for it beside other events)."""
    done = asyncio.Event()
    task.add_done_callback(lambda _: done.set())
    return done


def retrieved(future: asyncio.Future[Any]) -> None:
    """A done callback for a future that nobody may await any more (given up on, or its
    waiter cancelled): its exception is read, so that asyncio does not log it as "never
    retrieved"."""
    if not future.cancelled():
        future.exception()


async def within(awaitable: Awaitable[T], timeout: float, late: BaseException | None = None) -> T:
    """``awaitable``'s result, or its exception, if it ends within ``timeout`` seconds; else
    raises ``late`` (a ``TimeoutError`` if None: ``late`` is for a caller that must not take
    the call's own ``TimeoutError``, a socket's, for the end of the wait).

    What is not awaited to its end is not cancelled, neither at the timeout nor when the
    waiter is cancelled: a call in a thread cannot be stopped, and a caller may still want
    its outcome (awaiting ``awaitable`` again, a future). It goes on, and its outcome is
    read when it comes (:func:`retrieved`)."""
    call = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait({call}, timeout=timeout)
    finally:
        if not call.done():
            call.add_done_callback(retrieved)
    if not call.done():
        raise late if late is not None else TimeoutError(f"no answer within {timeout:g}s")
    return call.result()


def open_threads(workers: int = INTERNAL_THREADS) -> None:
    """Give :func:`in_thread` on the running loop threads of its own, until
    :func:`close_threads`. Why: the loop's default executor also resolves host names
    (``loop.getaddrinfo``, for http actions); a resolver that never answers holds every one
    of its threads, and reconciliation waiting behind it would stall for as long."""
    loop = asyncio.get_running_loop()
    if loop in _pools:
        raise RuntimeError("this loop has its threads already")
    _pools[loop] = ThreadPoolExecutor(workers, thread_name_prefix="crontask-io")


async def close_threads() -> None:
    """Wait for the work in flight in the threads of :func:`open_threads`, then end them
    (nothing if none are open). The waiting is done in a thread, as asyncio does for its
    default executor, so that the loop keeps running meanwhile."""
    loop = asyncio.get_running_loop()
    pool = _pools.pop(loop, None)
    if pool is None:
        return
    done = loop.create_future()

    def resolve() -> None:
        if not done.done():  # not if the waiting was cancelled
            done.set_result(None)

    def shut() -> None:
        pool.shutdown(wait=True)
        with contextlib.suppress(RuntimeError):  # the loop closed without waiting for this
            loop.call_soon_threadsafe(resolve)

    closer = threading.Thread(target=shut, name="crontask-io-shutdown")
    closer.start()
    await done
    closer.join()


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``asyncio.to_thread`` for crontask's own blocking work (reading sources and the store):
    in the threads of :func:`open_threads`, the default executor without them (tests that
    drive a part alone)."""
    loop = asyncio.get_running_loop()
    # As asyncio.to_thread: the call sees the caller's context variables.
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(_pools.get(loop), call)
