"""The httpx client of crontask's outgoing requests (an http task's, a notification's): what
both need of it, in one place below the runner and the sinks.

Proxies come from the environment, a setting httpx cannot use left out with a warning, and
``NO_PROXY`` matched as curl matches it, address ranges included (:mod:`reconciler.proxies`):
each proxy is a mount that sends what ``NO_PROXY`` names by the client's own transport.

A redirect is not followed, whatever its ``Location`` holds: httpx still builds the request it
would send next, and one it cannot parse (``mailto:ops@example.com``, ``http://h:abc/``) raised
an error that lost the response and its status (:func:`redirect_location` reads it instead).

A response's head is bounded: httpx reads interim responses (``100 Continue``, ...) until the
final one with no limit of their own, and each read of a stream of them came at once, so its
timeout, which is per read, never fired; a receiver answering every request with them kept the
event loop parsing for the whole attempt. A request now fails (``httpx.RemoteProtocolError``)
once :data:`HEAD_MAX` bytes of its response hold no final status (more than ten heads as
large as httpx takes, interim ones included: no response read before is refused short of
that), or more than :data:`INTERIM_MAX` interim heads have come (each costs h11's parsing, not
its bytes), read :data:`HEAD_READ` at a time so that other work runs between the reads.
httpx has no setting for it: each transport's connections get a network backend that counts
what a request reads until its response's head has come. httpx names no
backend of its own, so it is set on the pool httpx builds (httpcore's ``_network_backend``, not
public): a version without it is said in a warning and leaves heads unbounded, and
``tests/test_http_head_bound.py`` fails.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import httpcore
import httpx

from reconciler.proxies import VIA, Proxies, Routed, Warn, proxy_named
from reconciler.proxies import carried_by as carried_by  # where callers have found them
from reconciler.proxies import proxy_routes as proxy_routes

log = logging.getLogger("crontask.http")

# httpx (httpcore) takes at most 100 KiB for one head; an Early Hints before the final head
# counts too. A MiB of header lines, read HEAD_READ at a time, is a few milliseconds of the
# loop's; a MiB of 25-byte "100 Continue" heads was 42 000 heads for h11 to parse, 0.45 s of
# the loop's CPU an attempt: the heads are counted too (INTERIM_MAX).
HEAD_MAX: Final = 1024 * 1024
HEAD_READ: Final = 8 * 1024  # bytes per read until the head has come
# Interim responses (1xx) a final one may follow: a server sends one or two (100 Continue, 103
# Early Hints); 64 parse in about a millisecond.
INTERIM_MAX: Final = 64
NO_FINAL_STATUS: Final = f"no final status in the response's first {HEAD_MAX // 1024 // 1024} MiB"
TOO_MANY_INTERIM: Final = f"no final status after {INTERIM_MAX} interim responses"
# A head ends at a blank line, as h11 finds it: "\n\r?\n" ("\n\n" and "\r\n\n" too).
_HEAD_END: Final = re.compile(rb"\n\r?\n")
# An interim head's status line, as h11 reads it ("HTTP/1.1 103 Early Hints"), to its status
# class: the bytes of a head that tell interim from final.
_INTERIM: Final = re.compile(rb"HTTP/[0-9]\.[0-9] 1")
_STATUS_CLASS: Final = len(b"HTTP/1.1 1")


def async_client(
    *,
    timeout: float,
    verify: ssl.SSLContext | bool = True,
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    direct: bool = False,
    warn: Warn | None = None,
    event_hooks: Mapping[str, Sequence[Callable[[Any], Awaitable[None]]]] | None = None,
) -> httpx.AsyncClient:
    """A client that follows no redirect, with the environment's usable proxies (none when
    ``direct``), each of its transports bounding the response head; a setting left out is said
    through ``warn`` (default: a logged warning). ``transport`` (tests): used for every
    request, with no proxy, as httpx does with one. Each response's ``Location`` is moved
    aside after the ``response`` hooks of ``event_hooks`` (:func:`redirect_location`)."""
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    if transport is None:
        transport = _HeadBounded(verify=verify)
        proxies = Proxies() if direct else proxy_routes(warn)
        for pattern, proxy in proxies.proxies:
            through = _HeadBounded(verify=verify, proxy=(proxy, proxy_named(pattern, proxy)))
            mounts[pattern] = Routed(through, transport, proxies)
    hooks = {name: list(called) for name, called in (event_hooks or {}).items()}
    hooks["response"] = [*hooks.get("response", []), _location_aside]
    return httpx.AsyncClient(
        timeout=timeout,
        headers=headers,
        follow_redirects=False,
        trust_env=False,  # the proxies are the mounts: read here, not by httpx
        transport=transport,
        mounts=mounts,
        event_hooks=hooks,
    )


# -- a redirect's Location -------------------------------------------------------------------

# Where a response's Location is kept (``_location_aside``), in its extensions.
_LOCATION: Final = "crontask.location"


async def _location_aside(response: httpx.Response) -> None:
    """Move ``response``'s ``Location`` out of its headers before httpx reads it (the hooks
    run before it builds the next request), into its extensions."""
    location = response.headers.get("location")
    if location is not None:
        del response.headers["location"]
        response.extensions[_LOCATION] = location


def location(response: httpx.Response) -> str | None:
    """``response``'s ``Location`` (None: it has none), moved aside or not."""
    aside = response.extensions.get(_LOCATION)
    return aside if isinstance(aside, str) else response.headers.get("location")


def redirect_location(response: httpx.Response) -> str | None:
    """The ``Location`` of a ``3xx`` (``httpx.codes.is_redirect``: 300 to 399); None if
    ``response`` is none or names no location."""
    return location(response) if httpx.codes.is_redirect(response.status_code) else None


# -- the response head -----------------------------------------------------------------------


class _Budget:
    """What a request may still read before its response's final head."""

    __slots__ = ("final", "interim", "left", "start", "tail")

    def __init__(self) -> None:
        self.left = HEAD_MAX
        # Interim heads ended so far, and whether the final one has: what a read brings after
        # it is the body (a blank line in it ends no head).
        self.interim = 0
        self.final = False
        # The head being read: its first bytes (enough to tell its status's class), and its
        # last two, in which an end split between two reads begins.
        self.start = b""
        self.tail = b""

    def count(self, data: bytes) -> None:
        """Count the heads ``data`` ends, each as interim (``1xx``) or final: a read may bring
        many heads at once, the final one among them."""
        # An end begun in the tail is found with the new data; none lies wholly in it (it would
        # have been found then), so the first head found is the one being read.
        if self.final:
            return
        seen = self.tail + data
        at = 0  # where the bytes in seen of the head being read begin
        begin = len(self.tail)  # where its bytes not yet in start begin
        for end in _HEAD_END.finditer(seen):
            self._started(seen[begin : end.end()])
            if not _INTERIM.match(self.start):  # a final status (or none, which h11 refuses)
                self.final = True
                return
            self.interim += 1
            self.start = b""
            at = begin = end.end()
        self._started(seen[begin:])
        self.tail = seen[at:][-2:]

    def answering(self) -> None:
        """A request written: what is read next is its answer, after the proxy's (a SOCKS reply,
        a CONNECT's ``200``), which this budget read too."""
        self.final = False
        self.start = self.tail = b""

    def _started(self, more: bytes) -> None:
        """Add to ``start`` what it still lacks of ``more``, the head's next bytes."""
        self.start += more[: _STATUS_CLASS - len(self.start)]


# Set while a transport waits for a response's head: the reads of that request (in its task).
_head: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "crontask_http_head", default=None
)


class _HeadBounded(httpx.AsyncHTTPTransport):
    """httpx's transport, its connections reading through :class:`_Backend`. Until
    ``handle_async_request`` returns, what a request reads is its response's head (and the
    interim responses before it): the body is read later, through the response's stream."""

    def __init__(
        self, *, verify: ssl.SSLContext | bool, proxy: tuple[str, str] | None = None
    ) -> None:
        """``proxy``: its URL, and how an error names it (:func:`carried_by`)."""
        super().__init__(verify=verify, proxy=None if proxy is None else proxy[0])
        self._via = None if proxy is None else proxy[1]
        # httpx builds the pool (direct, HTTP or SOCKS proxy) without a way to name its
        # network backend; httpcore's pools and proxies give theirs to every connection.
        pool = self._pool
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.AsyncNetworkBackend):
            pool._network_backend = _Backend(backend)
        else:
            _unbounded()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._via is not None:  # read back from the request an error carries
            request.extensions[VIA] = self._via
        token = _head.set(_Budget())
        try:
            return await super().handle_async_request(request)
        finally:
            _head.reset(token)


@functools.cache
def _unbounded() -> None:
    """Said once: an httpx or httpcore whose pool has no network backend to wrap."""
    log.warning(
        "response heads are not bounded",
        extra={"fields": {"httpx": httpx.__version__, "httpcore": httpcore.__version__}},
    )


class _Backend(httpcore.AsyncNetworkBackend):
    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        return _Stream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )
        return _Stream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _Stream(httpcore.AsyncNetworkStream):
    """A connection whose reads, while a request waits for its head, count against it."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        budget = _head.get()
        if budget is None:  # the body: bounded by its reader
            return await self._stream.read(max_bytes, timeout)
        if budget.left <= 0:
            raise httpcore.RemoteProtocolError(NO_FINAL_STATUS)
        data = await self._stream.read(min(max_bytes, budget.left, HEAD_READ), timeout)
        budget.left -= len(data)
        budget.count(data)
        # Counted after the read, not before the next: one read may bring every interim head
        # and the final one after them, and h11 then asks for no other.
        if budget.interim > INTERIM_MAX:
            raise httpcore.RemoteProtocolError(TOO_MANY_INTERIM)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        budget = _head.get()
        if budget is not None:
            budget.answering()
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(
            await self._stream.start_tls(
                ssl_context, server_hostname=server_hostname, timeout=timeout
            )
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)
