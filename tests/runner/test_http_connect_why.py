"""Why an http run could not connect: the reason of the address that refused, as the system
says it, not the client's "All connection attempts failed", the same for a server that is down,
a network that is unreachable and a host behind a firewall that rejects."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterator

import httpx
import pytest

from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus
from reconciler.runner import http_text
from reconciler.runner.http import HttpRun
from reconciler.runner.http_secrets import Secrets


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound and not listening: refused while the test holds it."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def test_a_refused_connection_is_said_so(closed_port: int) -> None:
    action = HttpAction.model_validate(
        {"url": f"http://127.0.0.1:{closed_port}/hook", "timeoutSeconds": 10}
    )
    outcome = asyncio.run(HttpRun(action, env={}).run())
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "RequestFailed")
    assert outcome.message == (
        f"GET http://127.0.0.1:{closed_port}/***: cannot connect (Connection refused)"
    )


def _failed(cause: BaseException) -> httpx.ConnectError:
    try:
        try:
            raise OSError("All connection attempts failed") from cause
        except OSError as err:
            raise httpx.ConnectError(str(err)) from err
    except httpx.ConnectError as err:
        return err


def test_every_address_s_reason_is_said_once() -> None:
    # A name with several addresses: anyio's group of their failures.
    group = ExceptionGroup(
        "multiple connection attempts failed",
        [
            OSError(errno.ENETUNREACH, "Connect call failed ('::1', 80)"),
            ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('10.0.0.1', 80)"),
            ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('10.0.0.2', 80)"),
        ],
    )
    said = http_text.describe(_failed(group), Secrets(()))
    assert said == "cannot connect (Network is unreachable; Connection refused)"


def test_a_name_lookup_s_reason_is_its_own() -> None:
    # A gaierror's code is the resolver's (EAI_NONAME is -2), not an errno: its words are kept
    # (they do not quote the name, as a refused connect's "Connect call failed (addr)" does).
    failed = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    said = http_text.describe(_failed(failed), Secrets(()))
    assert said == "cannot connect (Name or service not known)"


def test_without_a_reason_the_client_s_words_stay() -> None:
    said = http_text.describe(_failed(RuntimeError("odd")), Secrets(()))
    assert said == "cannot connect (All connection attempts failed)"
