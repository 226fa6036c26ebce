"""The HTTP server's connections: bounded in number, and in the time a request's head takes.

uvicorn closes a connection that idles between requests (its keep-alive timeout), but not one
that has sent part of a request's head, or nothing at all. Each such connection holds a file
descriptor for good, before the API's admission (``api/admission.py``) ever sees a request:
a few hundred of them, from anyone who can connect, took every descriptor the process had,
and runs failed to start ("Too many open files"). So:

- at most ``connection_limit`` are open at once, a quarter of the process's limit on open
  files (``crontask run`` raises it to 65 536 where it can) up to 4 096, the requests the API
  lets wait. The rest is left to runs: a command holds two descriptors while it runs;
- at most ``peer_limit`` of them (an eighth, at least 16) come from one address, loopback
  included (a sidecar's or a port-forward's connections all do; the eviction below keeps its
  clients' requests going), an IPv6 address counted with the rest of its /64 (``peer_of``: a
  host is given a /64, and may send from any address in it). One host that kept 4 096
  connections sending a header line every 2 s, reopening each one closed, had every other
  connection closed at once: kubelet's probes failed and the pod was restarted, killing its runs;
- past either bound, the connection that has waited longest for a request head is dropped
  (aborted) to make room, first among those of the same address when that address is past
  its share: a client sends its head as soon as it connects, so the one waiting longest is the
  one that is not going to, or an idle keep-alive. A connection whose last answer is still in
  the process's buffer is not among them (its reader would lose the answer), nor one whose
  request is being answered. Only when none is waiting is the new connection closed;
- a request's head (its request line and headers; uvicorn holds one still arriving to 16 KiB,
  and ``api.app`` one arrived whole to 32 KiB) must arrive within
  ``HEAD_SECONDS`` of the connection opening, or of the previous response (uvicorn's own
  keep-alive timeout, 5 s, closes a connection that sends nothing sooner);
- an answer that is still being sent must keep moving: every ``WRITE_SECONDS`` at least
  ``WRITE_PROGRESS`` bytes of it have reached the client (the process's buffer and the
  kernel's send queue together went down by that much), or the connection is dropped
  (aborted). A response is written to the transport in one piece (a ``JSONResponse``), and
  the request leaves the API as soon as it is written (a stranger's, admission as soon as it
  starts: ``api.admission``); a client
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
from typing import Any, ClassVar, cast

from uvicorn.protocols.http.h11_impl import H11Protocol

from reconciler.api.routing import ABORT
from reconciler.hostnames import peer_of

log = logging.getLogger("crontask.api")

HEAD_SECONDS = 10.0
WRITE_SECONDS = 30.0
WRITE_PROGRESS = 16 * 1024  # bytes an answer must move every WRITE_SECONDS (about 0.5 KB/s)
# A flood of refused or dropped connections says so once a minute, not once a connection.
_WARN_EVERY = 60.0


def connection_limit(open_files: int) -> int:
    """How many connections the server keeps open, given the limit on open files."""
    if open_files == resource.RLIM_INFINITY:
        return 4096
    return max(32, min(4096, open_files // 4))


def peer_limit(max_connections: int) -> int:
    """How many of them one address may hold: an eighth, for other hosts to keep some room
    when one holds all its share in requests; at least 16 (a browser opens six at once)."""
    return min(max_connections, max(16, max_connections // 8))


def guarded(max_connections: int, per_peer: int | None = None) -> type[GuardedH11Protocol]:
    """uvicorn's HTTP/1.1 protocol, with these bounds (uvicorn takes a class). One class per
    server: its connections share the bookkeeping."""
    per_peer = peer_limit(max_connections) if per_peer is None else per_peer
    fields = {"max_connections": max_connections, "per_peer": per_peer, "crowd": _Crowd()}
    return type("GuardedH11Protocol", (GuardedH11Protocol,), fields)


class _Crowd:
    """One server's connections waiting for a request head, in the order they began to wait
    (a dict keeps its insertion order: the first is the oldest), and how many each address
    has open. The event loop's alone: no lock."""

    def __init__(self) -> None:
        self.waiting: dict[GuardedH11Protocol, None] = {}
        self.waiting_from: dict[str, dict[GuardedH11Protocol, None]] = {}
        self.open_from: dict[str, int] = {}

    def wait(self, conn: GuardedH11Protocol, peer: str | None) -> None:
        self.waiting[conn] = None
        if peer is not None:
            self.waiting_from.setdefault(peer, {})[conn] = None

    def stop_waiting(self, conn: GuardedH11Protocol, peer: str | None) -> None:
        self.waiting.pop(conn, None)
        if peer is None or peer not in self.waiting_from:
            return
        mine = self.waiting_from[peer]
        mine.pop(conn, None)
        if not mine:
            del self.waiting_from[peer]

    def oldest(self, peer: str | None) -> GuardedH11Protocol | None:
        """The connection waiting longest for a head: of ``peer``, or of any when None."""
        among = self.waiting if peer is None else self.waiting_from.get(peer, {})
        return next(iter(among), None)

    def opened(self, peer: str, change: int) -> None:
        count = self.open_from.get(peer, 0) + change
        if count > 0:
            self.open_from[peer] = count
        else:
            self.open_from.pop(peer, None)


class GuardedH11Protocol(H11Protocol):
    max_connections: ClassVar[int] = 4096
    per_peer: ClassVar[int] = 512
    crowd: ClassVar[_Crowd] = _Crowd()
    _head_deadline: asyncio.TimerHandle | None = None
    _write_deadline: asyncio.TimerHandle | None = None
    _unsent = 0  # what was unsent (ours and the kernel's) when the write deadline was armed
    _peer: str | None = None  # the address counted in ``crowd.open_from``, once let in
    _warned_at: ClassVar[dict[str, float]] = {}  # shared: one server per process

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # into ``self.connections``, and sets ``client``
        peer = peer_of(self.client[0]) if self.client else None  # None: a Unix socket
        if peer is not None and self.crowd.open_from.get(peer, 0) >= self.per_peer:
            let_in = self._make_room(peer, "too many from one address")
        elif len(self.connections) > self.max_connections:
            let_in = self._make_room(None, "too many open")
        else:
            let_in = True
        if not let_in:
            transport.close()  # connection_lost follows, and takes it out of the count
            return
        if peer is not None:
            self._peer = peer
            self.crowd.opened(peer, +1)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._between_requests():
            self._head_arrived()

    def handle_events(self) -> None:
        super().handle_events()  # may make a request's cycle, whose task runs on a later turn
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            # A request may drop its own connection (api.admission.ABORT): uvicorn's ends it
            # quietly once the connection is lost, where an app that stops mid-answer is an error.
            scope = cast(dict[str, Any], cycle.scope)
            host = self.client[0] if self.client else None  # the socket's, not a header's
            dropped = {"abort": self.transport.abort, "peer": self._peer, "host": host}
            scope.setdefault("extensions", {})[ABORT] = dropped

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
        if self._peer is not None:
            self.crowd.opened(self._peer, -1)
            self._peer = None
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _await_head(self) -> None:
        self._head_deadline = self.loop.call_later(HEAD_SECONDS, self._head_too_slow)
        if self.transport.get_write_buffer_size() == 0:
            self.crowd.wait(self, self._peer)

    def _head_arrived(self) -> None:
        self.crowd.stop_waiting(self, self._peer)
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        self.crowd.stop_waiting(self, self._peer)
        if self._between_requests() and not self.transport.is_closing():
            self.transport.close()

    def _make_room(self, peer: str | None, why: str) -> bool:
        """Drop the connection waiting longest for a head (of ``peer``, or of any) for this
        new one; False if none is waiting. abort(), not close(): the room is made now (its
        connection_lost comes on the loop's next turn), and it has nothing of ours unsent."""
        oldest = self.crowd.oldest(peer)
        if oldest is None:
            self._say(f"connection refused: {why}", peer)
            return False
        oldest._head_arrived()  # out of the waiting, and its deadline cancelled
        oldest.transport.abort()
        self._say(f"connection dropped for a newer one: {why}", peer)
        return True

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

    def _say(self, message: str, peer: str | None) -> None:
        """Log ``message`` once a minute at most: a flood says so once, not once a connection."""
        now = time.monotonic()
        if now - self._warned_at.get(message, -_WARN_EVERY) < _WARN_EVERY:
            return
        self._warned_at[message] = now
        fields: dict[str, object] = {"open": len(self.connections) - 1, "max": self.max_connections}
        if peer is not None:
            fields |= {"peer": peer, "per_peer": self.per_peer}
        log.warning(message, extra={"fields": fields})


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
