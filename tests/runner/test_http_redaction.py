"""The http action's run message (stored, shown by ``crontask runs --id`` and the API) never
carries the credentials of the task's URL: its userinfo and its query values are redacted."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus
from reconciler.runner.http import HttpRun

SECRETS = ("URLPASSWORD", "QTOKEN", "admin")


def attempt(url: str, timeout: float = 5) -> tuple[RunStatus, str]:
    action = HttpAction.model_validate({"url": url, "timeoutSeconds": timeout})
    outcome = asyncio.run(HttpRun(action, env={}).run())
    return outcome.status, outcome.message


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (in the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def test_a_failed_request_names_the_url_without_credentials(closed_port: int) -> None:
    url = f"http://admin:URLPASSWORD@127.0.0.1:{closed_port}/x?token=QTOKEN&a=1"
    status, message = attempt(url)
    assert status is RunStatus.FAILED
    assert message.startswith(f"GET http://127.0.0.1:{closed_port}/***?token=***&a=***: ")
    assert "cannot connect" in message
    assert not [s for s in SECRETS if s in message]


def test_a_timed_out_request_names_the_url_without_credentials(silent_port: int) -> None:
    url = f"http://admin:URLPASSWORD@127.0.0.1:{silent_port}/x?token=QTOKEN"
    status, message = attempt(url, timeout=0.3)
    assert status is RunStatus.TIMED_OUT
    assert message == f"GET http://127.0.0.1:{silent_port}/***?token=***: no response within 0.3s"
