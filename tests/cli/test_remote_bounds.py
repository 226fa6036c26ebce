"""A server cannot hold the client commands, nor fill their memory: a request has its
deadline in all (``$CRONTASK_TIMEOUT``, 10 s by default), however the server paces its bytes,
and an answer longer than 64 MiB is refused, whether it says so or not."""

from __future__ import annotations

import pytest

from reconciler.cli import client
from tests.cli.hostile import Handler, HostileServer, assert_one_line_error, cli, crontask

DEADLINE = 1.5
SLACK = 4.0  # starting the interpreter, on a busy machine


def drip_body(h: Handler) -> None:
    """A small answer, one byte a second: every read is quick, the whole is not."""
    body = b'{"items": []}' + b" " * 100
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.flush()
    for byte in body:
        if h.server.stopped.wait(1.0):
            return
        h.wfile.write(bytes([byte]))
        h.wfile.flush()


def drip_headers(h: Handler) -> None:
    """The status line, then a header line that never ends, one byte a second."""
    h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    h.wfile.flush()
    while not h.server.stopped.wait(1.0):
        h.wfile.write(b"x")
        h.wfile.flush()


@pytest.mark.parametrize("answer", [drip_body, drip_headers])
def test_a_drip_ends_at_the_deadline(hostile: HostileServer, answer: object) -> None:
    hostile.answer = answer  # type: ignore[assignment]
    done = crontask(
        "tasks",
        "--server",
        hostile.url,
        env={"CRONTASK_TIMEOUT": str(DEADLINE)},
        timeout=DEADLINE + 2 * SLACK,
    )
    assert_one_line_error(
        done.code, done.err, f"crontask at {hostile.url} did not answer within {DEADLINE:g}s"
    )
    assert done.seconds < DEADLINE + SLACK


def too_long_said(h: Handler) -> None:
    """More than the bound, and the length says so (all of it is sent, if read)."""
    pad = b"x" * (client.MAX_ANSWER_BYTES + 1)
    h.send(200, b'{"items": [], "pad": "' + pad + b'"}')


def too_long_chunked(h: Handler) -> None:
    """More than the bound, without a length: chunk after chunk."""
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    pad = b"x" * (1 << 20)
    for chunk in (
        [b'{"items": [], "pad": "']
        + [pad] * (client.MAX_ANSWER_BYTES // len(pad) + 1)
        + [b'"}', b""]
    ):
        h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))


@pytest.mark.parametrize("answer", [too_long_said, too_long_chunked])
def test_an_answer_too_long_is_refused(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], answer: object
) -> None:
    hostile.answer = answer  # type: ignore[assignment]
    code = cli("tasks", "--server", hostile.url)
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, f"{hostile.url} answered more than 64 MiB (refused)")


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "3601", "ten", "1" * 40])
def test_a_bad_timeout_is_a_usage_error(
    hostile: HostileServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    value: str,
) -> None:
    monkeypatch.setenv("CRONTASK_TIMEOUT", value)
    assert cli("tasks", "--server", hostile.url) == 2
    err = capsys.readouterr().err
    assert err.startswith("crontask: $CRONTASK_TIMEOUT: expected seconds")
    assert err.count("\n") == 1
    assert hostile.requests == []
