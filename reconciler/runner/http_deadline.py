"""An http attempt's deadline (``runner.http``): what has come by then is taken; only a wait
for what has not come is cut.

asyncio's ``timeout_at`` cancels the attempt's task when its timer runs. After crontask was
stopped (SIGSTOP, a frozen VM) or its event loop held up past the deadline, that timer runs in
the very round in which the loop hands the attempt the answer that came meanwhile, and its
cancel lands first: the run was recorded ``timedOut`` although its answer had come, and its
retry sent the request again (a POST's side effect twice). A command whose process ended
during such a stop is recorded by its exit, for the same reason.

So the deadline cancels the attempt only once it waits for the network with nothing there
for it. At the deadline, and then once a loop round, after the round's I/O (a timer of the
loop, which runs after it), :class:`Deadline` looks at the attempt:

* its task about to run (what it waited for has come, or it only let others run): not yet;
* its task waiting, its connection with bytes the loop has not read: not yet, once; still
  so at the next look, the loop (which reads a connection in the round after it was asked
  to) did not take them: nothing reads them (the attempt waits for something else, a write)
  and that wait is cut;
* else (waiting, nothing unread, or no connection yet): cancelled, as ``timeout_at`` does.

An attempt without an answer is thus cancelled at the first look, at its deadline as before.
What an attempt can read after its deadline is bounded (a head of at most
``httpclient.HEAD_MAX`` bytes, a body's first ``output_limit``), yet a sender that keeps its
bytes coming round after round would hold it that long: :data:`CATCH_UP` (or as long as the
loop was late to the deadline, if longer: a loop back from a stop has much to do, but no
longer than the attempt's own timeout: after an hour's stop, such a sender held the attempt
an hour past its deadline) bounds that in time.

The connection is learnt from httpcore's ``trace`` extension (each ``connect_tcp``: direct,
to an HTTP or a SOCKS proxy), whether a task is about to run from its ``_fut_waiter`` (not
public; anyio reads it as well, for the same purpose: not to cancel a task whose wait is over).
"""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final

# How long, at least, an attempt whose deadline has passed may go on reading what keeps coming.
CATCH_UP: Final = 1.0

_UNKNOWN: Final = object()  # a task without _fut_waiter (another Python): never about to run


class Deadline:
    """``async with Deadline(when, timeout)``: as ``asyncio.timeout_at(when)``
    (``TimeoutError`` out of the block once the attempt is cut), ``when`` on the loop's clock,
    ``timeout`` the attempt's (what the catching up may last beyond :data:`CATCH_UP`), but see
    the module. Requests in the block pass ``extensions={"trace": deadline.trace}``."""

    def __init__(self, when: float, timeout: float) -> None:
        self._when = when
        self._longest = max(CATCH_UP, timeout)
        self._timeout = asyncio.timeout(None)
        self._socket: socket.socket | None = None
        self._until: float | None = None  # when the catching up ends in any case
        self._unread = False  # the last look found bytes unread, the task waiting
        self._look: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> Deadline:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._loop = asyncio.get_running_loop()
        await self._timeout.__aenter__()
        self._look = self._loop.call_at(self._when, self._looked)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._look is not None:
            self._look.cancel()
        await self._timeout.__aexit__(kind, error, traceback)  # TimeoutError once it cut

    async def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore's ``trace`` extension: the connection, once made."""
        if event.endswith("connect_tcp.complete"):
            stream = info.get("return_value")
            found = stream.get_extra_info("socket") if stream is not None else None
            self._socket = found if found is not None else self._socket

    def _looked(self) -> None:
        now = self._loop.time()
        if self._until is None:
            self._until = now + min(max(CATCH_UP, now - self._when), self._longest)
        if now < self._until and self._pending():
            # A timer, not call_soon: it runs after the next round's I/O.
            self._look = self._loop.call_at(now, self._looked)
            return
        self._look = None
        self._timeout.reschedule(now)  # cancels the task now (call_soon)

    def _pending(self) -> bool:
        """Whether the attempt may yet take something that has come (the module's rules)."""
        waiter = getattr(self._task, "_fut_waiter", _UNKNOWN)
        if waiter is None or (isinstance(waiter, asyncio.Future) and waiter.done()):
            self._unread = False
            return not self._task.done()
        if not _unread(self._socket):
            return False
        fresh, self._unread = not self._unread, True
        return fresh


def _unread(connection: socket.socket | None) -> bool:
    """Whether ``connection`` has something the loop has not read: bytes, its end, an error."""
    fd = -1 if connection is None else connection.fileno()  # -1 once closed
    if fd < 0:
        return False
    poll = select.poll()
    poll.register(fd, select.POLLIN)
    return bool(poll.poll(0))
