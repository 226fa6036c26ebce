"""The HTTP server's connections: bounded in number, and in the time a request's head takes.

uvicorn closes a connection that idles between requests (its keep-alive timeout), but not one
that has sent part of a request's head, or nothing at all. Each such connection holds a file
descriptor for good, before the API's admission (``api/admission.py``) ever sees a request:
a few hundred of them, from anyone who can connect, took every descriptor the process had,
and runs failed to start ("Too many open files"). So:

- at most ``connection_limit`` are open at once, a quarter of the process's limit on open
  files (``crontask run`` raises it to 65 536 where it can) up to 4 096, the requests the API
  lets wait; one more is closed as soon as it is accepted. The rest is left to runs: a command
  holds two descriptors while it runs;
- a request's head (its request line and headers, at most uvicorn's 16 KiB) must arrive within
  ``HEAD_SECONDS`` of the connection opening, or of the previous response (uvicorn's own
  keep-alive timeout, 5 s, closes a connection that sends nothing sooner);
- an answer that is still being sent must keep moving: every ``WRITE_SECONDS`` at least
  ``WRITE_PROGRESS`` bytes of it have reached the client (the process's buffer and the
  kernel's send queue together went down by that much), or the connection is dropped
  (aborted). A response is written to the transport in one piece (a ``JSONResponse``), and
  the request leaves the API, and its place in admission, as soon as it is written; a client
  that never reads kept the whole answer in memory and the connection open for good:
  ``close()`` waits for what is unsent to be sent.
  Progress, not the whole answer, is what is timed: a slow link may take minutes over 10 MB.
  The kernel's queue counts: it holds megabytes, and while a slow client drains it the
  process's own buffer does not move for minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import resource
import struct
import termios
import time
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("crontask.api")

HEAD_SECONDS = 10.0
WRITE_SECONDS = 30.0
WRITE_PROGRESS = 16 * 1024  # bytes an answer must move every WRITE_SECONDS (about 0.5 KB/s)
# A flood of refused connections says so once a minute, not once a connection.
_WARN_EVERY = 60.0


def connection_limit(open_files: int) -> int:
    """How many connections the server keeps open, given the limit on open files."""
    if open_files == resource.RLIM_INFINITY:
        return 4096
    return max(32, min(4096, open_files // 4))


def guarded(max_connections: int) -> type[GuardedH11Protocol]:
    """uvicorn's HTTP/1.1 protocol, with these bounds (uvicorn takes a class)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"max_connections": max_connections})


class GuardedH11Protocol(H11Protocol):
    max_connections: ClassVar[int] = 4096
    _head_deadline: asyncio.TimerHandle | None = None
    _write_deadline: asyncio.TimerHandle | None = None
    _unsent = 0  # what was unsent (ours and the kernel's) when the write deadline was armed
    _warned_at = -_WARN_EVERY  # shared by every connection: one server per process

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.close()  # connection_lost follows, and takes it out of the count
            self._refused()
            return
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._between_requests():
            self._head_arrived()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start a pipelined request at once
        if self.transport.get_write_buffer_size() > 0:
            self._watch_writes()  # the answer is written, not sent: a small one pauses nothing
        if self._between_requests() and not self.transport.is_closing():
            self._head_arrived()
            self._await_head()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch_writes()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _await_head(self) -> None:
        self._head_deadline = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)

    def _head_arrived(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self._between_requests() and not self.transport.is_closing():
            self.transport.close()

    def _watch_writes(self) -> None:
        """Time the answer's progress from now, or, already timed, from at least what is
        unsent now (another answer written meanwhile is not progress missed)."""
        unsent = self._unsent_now()
        if self._write_deadline is None:
            self._unsent = unsent
            self._write_deadline = self.loop.call_later(WRITE_SECONDS, self._writes_checked)
        else:
            self._unsent = max(self._unsent, unsent)

    def _unsent_now(self) -> int:
        return self.transport.get_write_buffer_size() + _kernel_queue(self.transport)

    def _writes_checked(self) -> None:
        self._write_deadline = None
        if self.transport.get_write_buffer_size() == 0:
            return  # all handed to the kernel: a later pause or answer watches again
        unsent = self._unsent_now()
        # Sizes tell progress only while nothing is added: writes paused, or the answer done.
        settled = self.flow.write_paused or self._between_requests()
        if unsent <= self._unsent - WRITE_PROGRESS or not settled:
            self._watch_writes()
            return
        # Not close(): it would wait, with the bytes and the descriptor, for a reader that
        # does not read. abort() drops both, and uvicorn's connection_lost ends the request.
        log.debug(
            "connection dropped: its client stopped reading", extra={"fields": {"unsent": unsent}}
        )
        self.transport.abort()

    def _refused(self) -> None:
        now = time.monotonic()
        if now - GuardedH11Protocol._warned_at >= _WARN_EVERY:
            GuardedH11Protocol._warned_at = now
            log.warning(
                "connection refused: too many open",
                extra={"fields": {"open": len(self.connections) - 1, "max": self.max_connections}},
            )


def _kernel_queue(transport: Any) -> int:
    """The bytes of a TCP connection's send queue not yet acknowledged by its peer (Linux's
    ``SIOCOUTQ``); 0 where it cannot be read."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    with contextlib.suppress(OSError, ValueError):
        queued: int = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
        return queued
    return 0
