"""What a run says of a response the client cannot read: the server's line as text, and what
went wrong in words a user knows, not the HTTP library's repr of a buffer or its state names."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus
from reconciler.runner.base import Outcome
from reconciler.runner.http import HttpRun


@pytest.fixture
def answer() -> Iterator[tuple[int, list[bytes]]]:
    """A server on a free port that sends, to every request, the bytes put in the list."""
    listener = socket.create_server(("127.0.0.1", 0))
    sent: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                    data += chunk
                conn.sendall(sent[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], sent
    listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
    listener.close()
    thread.join(5)


def run(port: int, headers: list[dict[str, str]] | None = None) -> Outcome:
    action = HttpAction.model_validate(
        {"url": f"http://127.0.0.1:{port}/x", "timeoutSeconds": 10, "headers": headers or []}
    )
    return asyncio.run(HttpRun(action, env={}).run())


@pytest.mark.parametrize(
    ("sent", "said"),
    [
        (b"HTTP/1.1 2000 OK\r\n\r\n", "illegal status line: 'HTTP/1.1 2000 OK'"),
        (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "illegal header line: 'bad header'"),
        (b"HTTP/1.1 200 OK\r\nit's\x01\r\n\r\n", "illegal header line: 'it's\\x01'"),
    ],
)
def test_a_line_the_client_refuses_is_quoted_as_text(
    answer: tuple[int, list[bytes]], sent: bytes, said: str
) -> None:
    port, answers = answer
    answers.append(sent)
    outcome = run(port)
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "RequestFailed")
    assert outcome.message == f"GET http://127.0.0.1:{port}/***: {said}"


def test_a_switch_of_protocol_nobody_asked_for_is_said_so(
    answer: tuple[int, list[bytes]],
) -> None:
    port, answers = answer
    answers.append(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n")
    outcome = run(port)
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "RequestFailed")
    assert outcome.message == (
        f"GET http://127.0.0.1:{port}/***: the server switched protocols (101 Switching "
        "Protocols) though the request asked for no upgrade (no Upgrade header)"
    )


@pytest.mark.parametrize(
    ("sent", "where", "then"),
    [
        # A reason phrase, a Location, header lines: a head longer than the client reads.
        (b"HTTP/1.1 500 " + b"R" * 200_000 + b"\r\nContent-Length: 0\r\n\r\n", "", ""),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 20_000 + b"Content-Length: 2\r\n\r\nok", "", ""),
        # A chunk's size line, in the body: the status is kept, the body said cut short.
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=" + b"e" * 200_000,
            "HTTP 200 OK; response body cut short: ",
            "; not retried: the server took the request (HTTP 200)",
        ),
    ],
)
def test_a_head_or_line_longer_than_the_client_reads_is_said_so(
    answer: tuple[int, list[bytes]], sent: bytes, where: str, then: str
) -> None:
    # h11's words were "Receive buffer too long", which said neither what nor how long.
    port, answers = answer
    answers.append(sent)
    outcome = run(port)
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "RequestFailed")
    assert outcome.message == (
        f"GET http://127.0.0.1:{port}/***: {where}a response head or line of more than "
        f"100 KiB, more than the client reads{then}"
    )


def test_a_quote_that_is_no_bytes_literal_is_left_as_it_is() -> None:
    # Only what h11's repr writes is rewritten; any other text stays (never an exception).
    from reconciler.runner import http_text

    odd = r"illegal status line: bytearray(b'\xZZ')"
    assert http_text._in_words(odd) == odd
