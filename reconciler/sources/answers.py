"""The API server's next answer, awaited: what the ``job`` action's reads of a Job whose create
went unanswered wait for, besides their growing pause (``runner.job_create.read_job``). After an
outage they read again as soon as any request through the cluster is answered, instead of each
at its own pause, grown meanwhile to ``verify_seconds``, or all at the same moment every 2 s.

An answer is a result, or an error with a status that is not 429 or a 5xx (a 404 answers a
read): an API server that says it is away (503), too busy (429), or says nothing, has not
answered. :class:`Answers` is a mixin for a cluster (``sources.kubernetes_jobs.JobWatch``):
its requests go through :meth:`Answers.heard_from`, and its watch calls :meth:`Answers.api_answered`
when it sees a change.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Answers:
    @functools.cached_property
    def _answer_waiters(self) -> set[asyncio.Future[None]]:
        return set()  # made at the first use: no __init__ for the classes that mix it in

    def when_answered(self) -> asyncio.Future[None]:
        """Set at the API server's next answer, counting from this call; cancel it to stop
        waiting (it is then forgotten)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._answer_waiters.add(waiter)
        waiter.add_done_callback(self._answer_waiters.discard)
        return waiter

    def api_answered(self) -> None:
        """The API server answered (on the loop): every waiter is set."""
        waiters = list(self._answer_waiters)
        self._answer_waiters.clear()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def heard_from(self, call: Awaitable[T]) -> T:
        """What ``call`` (a request) gives or raises; an answer (the module docstring) sets
        the waiters."""
        try:
            result = await call
        except Exception as err:
            status = getattr(err, "status", None)
            if isinstance(status, int) and status < 500 and status != 429:
                self.api_answered()
            raise
        self.api_answered()
        return result
