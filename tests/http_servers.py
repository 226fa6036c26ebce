"""Real HTTP servers on 127.0.0.1 (or ::1) in the test's own event loop, answering each request
as told: for the tests of what crontask's outgoing requests read of a response
(``reconciler.httpclient``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

# Writes the whole answer to one request; a client that goes away ends it (ConnectionError).
Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


async def interim_flood(writer: asyncio.StreamWriter) -> None:
    """``100 Continue`` after ``100 Continue``, as fast as the client reads them, for ever."""
    burst = CONTINUE * 400
    while True:
        writer.write(burst)
        await writer.drain()


def text(body: bytes, *, head: bytes = b"") -> Answer:
    """200 with ``body``, after ``head`` (interim responses, say)."""

    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(head)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()

    return answer


@dataclasses.dataclass
class Server:
    url: str
    requests: list[str] = dataclasses.field(default_factory=list)  # their request lines


@contextlib.asynccontextmanager
async def serving(answer: Answer, host: str = "127.0.0.1") -> AsyncIterator[Server]:
    """A server on a free port of ``host``, answering every request with ``answer``."""
    # Every connection it holds, closed before the loop is: one left to the collector warns
    # "loop is closed" in whatever test of the worker runs then.
    writers: list[asyncio.StreamWriter] = []
    served = Server("")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                served.requests.append(lines[0])
                length = next(
                    (
                        int(v)
                        for k, _, v in (x.partition(":") for x in lines)
                        if k.lower() == "content-length"
                    ),
                    0,
                )
                await reader.readexactly(length)
                await answer(writer)
        writer.close()

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = await asyncio.start_server(serve, host, 0, family=family)
    port = server.sockets[0].getsockname()[1]
    served.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    async with server:
        try:
            yield served
        finally:
            for writer in writers:
                writer.close()
            for writer in writers:
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
