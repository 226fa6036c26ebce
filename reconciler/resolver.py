"""The event loop crontask runs on: host names are resolved in threads nobody waits for.

asyncio resolves a name (``loop.getaddrinfo``, for every http action, notification and API
call by name) in its default executor: a handful of threads that ``asyncio.run`` and the
interpreter join on their way out. A resolver that never answers for one name (a DNS server
that drops the queries of one zone) then held every thread: the lookups of every other name
waited behind it, healthy notification receivers and http tasks stalled, and the process
could not exit for as long as the resolver took. Here each lookup is a daemon thread of its
own, abandoned by a caller whose deadline passes and never joined; at most ``PER_NAME`` run
at once for one name and ``IN_ALL`` in all, so that one name cannot take every place and a
resolver that hangs cannot pile threads up. A place is given back when its thread ends, not
when its caller gives up: the bound is on threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Final, TypeVar

T = TypeVar("T")

PER_NAME: Final = 4
IN_ALL: Final = 32


def run(call: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(call)`` on a :class:`ResolvingLoop`."""
    with asyncio.Runner(loop_factory=ResolvingLoop) as runner:
        return runner.run(call)


def abandonable(fn: Callable[[], T], name: str = "crontask-resolver") -> asyncio.Future[T]:
    """``fn()`` in a daemon thread of its own (named ``name``), as a future of the running
    loop. A caller that stops waiting abandons the thread: nothing joins it, not even the
    interpreter at exit. For calls that may hang without a bound of their own (a name lookup,
    a Kubernetes call at a stop, a read from a
    mount that hangs); the caller bounds how many run at once."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.done():  # abandoned
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def call() -> None:
        try:
            result, error = fn(), None
        except Exception as exc:  # handed to the caller, as an executor would
            result, error = None, exc
        # A closed loop: nobody is waiting for the answer any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=call, name=name, daemon=True).start()
    return done


def in_own_thread(fn: Callable[[], T], name: str) -> Future[T]:
    """``fn()`` begun in a daemon thread of its own (named ``name``), its result or error in
    the future: for a blocking call (a store that may never answer) whose caller waits with a
    deadline (``future.result(timeout)``, ``concurrent.futures.wait``) and may give up on it;
    nothing joins the thread, not even the interpreter at exit. :func:`abandonable` is the
    same for a caller on the event loop."""
    done: Future[T] = Future()

    def call() -> None:
        try:
            result = fn()
        except BaseException as err:  # raised in the caller's thread, not lost in this one
            done.set_exception(err)
        else:
            done.set_result(result)

    threading.Thread(target=call, name=name, daemon=True).start()
    return done


class _Places:
    """Places for lookup threads: ``take`` waits for one, ``give`` (when the thread ends)
    hands it to the next in line."""

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiting: list[asyncio.Future[None]] = []

    async def take(self) -> None:
        if self.free > 0 and not self.waiting:
            self.free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.give()  # handed to us as we gave up: pass it on
            elif turn in self.waiting:  # give() may have passed over it already
                self.waiting.remove(turn)
            raise

    def give(self) -> None:
        while self.waiting:
            turn = self.waiting.pop(0)
            if not turn.done():
                turn.set_result(None)
                return
        self.free += 1

    @property
    def idle(self) -> bool:
        return not self.waiting


class ResolvingLoop(asyncio.SelectorEventLoop):
    """An event loop whose name lookups are bounded daemon threads (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._all = _Places(IN_ALL)
        self._names: dict[tuple[object, object], _Places] = {}

    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        key = (host, family)
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = _Places(PER_NAME)
        try:
            await name.take()
            try:
                await self._all.take()
            except BaseException:
                self._give(key, name)
                raise
        except BaseException:
            self._forget(key, name)
            raise

        def lookup() -> list[Any]:
            return socket.getaddrinfo(host, port, family, type, proto, flags)

        def ended(answer: asyncio.Future[list[Any]]) -> None:
            # The places are given back when the thread ends, whoever waits for it by then.
            if not answer.cancelled():
                answer.exception()  # taken: a caller that gave up need not hear of it
            self._all.give()
            self._give(key, name)

        try:
            answer = abandonable(lookup)
        except BaseException:  # no thread to be had (a pids limit): the places go back now
            self._all.give()
            self._give(key, name)
            raise
        answer.add_done_callback(ended)
        return await asyncio.shield(answer)

    def _give(self, key: tuple[object, object], name: _Places) -> None:
        name.give()
        self._forget(key, name)

    def _forget(self, key: tuple[object, object], name: _Places) -> None:
        # A name nobody resolves any more is forgotten: hostile tasks may use many.
        if name.idle and name.free == PER_NAME and self._names.get(key) is name:
            del self._names[key]
