"""The event loop the CLI's client runs a request on.

The request's one deadline (``$CRONTASK_TIMEOUT``) covers resolving the server's name too.
asyncio resolves in its default executor, whose threads ``asyncio.run`` joins on its way out
and the interpreter joins at exit: a resolver that hangs would hold the command past its
deadline for as long as the resolver takes. Here each resolution is a daemon thread that
nobody joins; one abandoned at the deadline ends with the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_client(call: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(call)``, on a loop whose name resolution nothing waits for."""
    with asyncio.Runner(loop_factory=_Loop) as runner:
        return runner.run(call)


class _Loop(asyncio.SelectorEventLoop):
    """Resolves each name in a daemon thread of its own (module docstring)."""

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
        found: asyncio.Future[list[Any]] = self.create_future()

        def settle(result: list[Any] | None, error: BaseException | None) -> None:
            if found.done():  # abandoned: the deadline passed
                return
            if error is not None:
                found.set_exception(error)
            else:
                found.set_result(result or [])

        def resolve() -> None:
            try:
                result, error = socket.getaddrinfo(host, port, family, type, proto, flags), None
            except Exception as exc:  # handed to the caller, as asyncio's executor would
                result, error = None, exc
            # A closed loop: the command is over, nobody is waiting for the answer.
            with contextlib.suppress(RuntimeError):
                self.call_soon_threadsafe(settle, result, error)

        threading.Thread(target=resolve, name="crontask-resolver", daemon=True).start()
        return await found
