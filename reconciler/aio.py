"""Waiting on asyncio events with a timeout, without leaking the waiters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

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
