"""Waiting on asyncio events with a timeout, without leaking the waiters; crontask's own
threads for its blocking work."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
import weakref
from collections.abc import Callable
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
