"""A receiver whose host name does not resolve is not logged as one that is down: both said
only ``error=ConnectError``. The line says why (``cause``: ``name not resolved``, ``connection
refused``), read from the error's cause chain (``socket.gaierror``'s code, an ``OSError``'s
errno), never from its text nor quoting the URL or its host; both are retried as before.

Real attempts through crontask's client and loop (``resolver.run``): a ``.invalid`` name (RFC
6761: never resolves, answered by the resolver library without asking a DNS server) and a
port bound here with nothing listening on it (refused, and no other process can take it).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler import resolver
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify_delivery import MAX_ATTEMPTS, Delivery, Message
from reconciler.sinks.notify_failures import connect_failure, failure_fields
from tests.notify.test_notifier import config, counts

UNRESOLVED = "no-such-host-crontask.invalid"
PORTS = range(32500, 33000)  # this test's range on a shared machine


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port bound and not listening: a connection to it is refused while the test
    holds it, and nothing else can listen there meanwhile."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        for port in PORTS:
            try:
                held.bind(("127.0.0.1", port))
            except OSError as err:
                if err.errno != errno.EADDRINUSE:
                    raise
                continue
            yield port
            return
    pytest.fail(f"no free port in {PORTS}")


def _attempts(
    tmp_path: Path, url: str, caplog: pytest.LogCaptureFixture
) -> list[dict[str, object]]:
    """The fields of the log lines of one message's attempts to reach ``url``, to the last."""
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    metrics = Metrics()
    folder = tmp_path / "n"
    folder.mkdir()
    delivery = Delivery(config(folder, url, kind="generic"), metrics=metrics, backoff=0.01)

    async def main() -> None:
        stop = asyncio.Event()
        async with delivery.running(stop):
            delivery.enqueue(Message("hook", "failed", {"n": 1}))
            while counts(metrics).get("failed", 0) < 1:
                await asyncio.sleep(0.01)
            stop.set()

    resolver.run(main())
    return [r.__dict__["fields"] for r in caplog.records if "notification" in r.getMessage()]


@pytest.mark.parametrize(
    ("where", "cause"),
    [
        pytest.param(f"http://{UNRESOLVED}/hook", "name not resolved", id="unresolved"),
        pytest.param("http://127.0.0.1:{port}/hook", "connection refused", id="refused"),
    ],
)
def test_why_no_connection_was_made_is_said(
    tmp_path: Path,
    closed_port: int,
    caplog: pytest.LogCaptureFixture,
    where: str,
    cause: str,
) -> None:
    url = where.format(port=closed_port)
    tried = _attempts(tmp_path, url, caplog)

    assert [f["attempt"] for f in tried] == list(range(1, MAX_ATTEMPTS + 1))  # retried
    for fields in tried:
        assert (fields["error"], fields["cause"]) == ("ConnectError", cause)
        assert "tls" not in fields
    assert UNRESOLVED not in str(tried)
    assert str(closed_port) not in str(tried)


def _raised_from(cause: BaseException) -> httpx.ConnectError:
    """An httpx error raised from ``cause``, as httpx raises one from a failed connect."""
    try:
        try:
            raise cause
        except OSError as err:
            raise httpx.ConnectError("All connection attempts failed") from err
    except httpx.ConnectError as err:
        return err


def test_the_cause_is_read_from_codes_not_words() -> None:
    again = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    assert connect_failure(_raised_from(again)) == "name lookup failed temporarily"
    unreachable = OSError(errno.ENETUNREACH, "Network is unreachable")
    assert connect_failure(_raised_from(unreachable)) == "network unreachable"
    # Words alone say nothing: an error without a code in its chain has no cause.
    assert connect_failure(httpx.ConnectError("[Errno 111] Connection refused")) is None
    assert connect_failure(_raised_from(OSError("All connection attempts failed"))) is None
    assert failure_fields(httpx.ReadTimeout("timed out")) == {}
