"""A real HTTP server in a thread of its own (it answers while the test's event loop, or a
process the test stopped, does not run), holding each answer until the test releases it, and
saying when it has a request and when it has answered: events, not sleeps. And an event loop
whose clock a test moves on, as a stop of the process moves it (:class:`StoppableLoop`)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

BOUND = 20.0  # how long a test waits for what must come, not what it checks


class StoppableLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock a test moves on (``stopped_for``), as a stop of the process
    (SIGSTOP, a frozen VM) moves it while nothing of the loop runs: the deadlines of what is
    under way can pass in a stop alone, however slowly a loaded machine got there."""

    def __init__(self) -> None:
        super().__init__()
        self.stopped_for = 0.0

    def time(self) -> float:
        return super().time() + self.stopped_for


def run_stoppable(scenario: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(scenario)`` on a :class:`StoppableLoop`."""
    with asyncio.Runner(loop_factory=StoppableLoop) as runner:
        return runner.run(scenario)


class HeldAnswer:
    """Takes one request (a head and a one-byte body) at a time, says so (``received``),
    answers it with ``answer`` once ``release`` is set, and says so (``answered``)."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.requests = 0
        self.received = threading.Event()
        self.release = threading.Event()
        self.answered = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/hook?token=s3cr3t"
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed
                return
            with conn:
                data = b""
                while not data.endswith(b"\r\n\r\nx"):  # the head and its one-byte body
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.requests += 1
                self.received.set()
                self.release.wait(BOUND)
                if self.answer:
                    conn.sendall(self.answer)
                self.answered.set()
                conn.settimeout(BOUND)
                while not self._closing.is_set():  # held open until the client closes it
                    try:
                        if not conn.recv(4096):
                            break
                    except OSError:
                        break

    def close(self) -> None:
        self._closing.set()
        self.release.set()
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (closing it would not)
        self._listener.close()
        self._thread.join(BOUND)
