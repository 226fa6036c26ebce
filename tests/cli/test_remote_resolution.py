"""A server name whose resolution never ends cannot hold the client commands: the deadline
(``$CRONTASK_TIMEOUT``) covers resolving it too, and the command returns and the process exits
at the deadline, not when the resolver gives up."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import client
from reconciler.cli.answers import Unsent
from reconciler.cli.remote import NOT_TRIGGERED
from tests.cli.hostile import assert_one_line_error, crontask
from tests.helpers import hanging_lookups

DEADLINE = 1.0
SLACK = 4.0  # starting the interpreter, on a busy machine
HANGS = "resolving.hangs.test"


def test_a_call_returns_at_its_deadline_while_resolution_hangs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    released = threading.Event()
    real = socket.getaddrinfo

    def hanging(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in (HANGS, HANGS.encode()):
            released.wait(30)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    answer: list[BaseException] = []

    def call() -> None:
        try:
            client.request(f"http://{HANGS}:8080", None, "GET", "/api/v1/tasks", timeout=DEADLINE)
        except BaseException as exc:  # handed to the test
            answer.append(exc)

    started = time.monotonic()
    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    try:
        caller.join(DEADLINE + SLACK)
        assert not caller.is_alive(), "the call outlived its deadline, waiting for the resolver"
    finally:
        released.set()
    assert time.monotonic() - started < DEADLINE + SLACK
    assert [type(exc) for exc in answer] == [Unsent]  # a RemoteError: never sent, nothing done
    assert f"did not answer within {DEADLINE:g}s; nothing was sent to it" in str(answer[0])


@pytest.mark.parametrize("command", [("tasks",), ("trigger", "default/t"), ("runs",)])
def test_the_command_exits_at_its_deadline_while_resolution_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    path = hanging_lookups(tmp_path, HANGS)
    url = f"http://{HANGS}:8080"
    done = crontask(
        *command,
        "--server",
        url,
        env={"CRONTASK_TIMEOUT": str(DEADLINE), "PYTHONPATH": path},
        timeout=DEADLINE + 2 * SLACK,
    )
    # Nothing was sent: a trigger surely was not taken (try again later).
    status = NOT_TRIGGERED if command[0] == "trigger" else 1
    assert_one_line_error(done.code, done.err, f"crontask at {url} did not answer within", status)
    assert done.seconds < DEADLINE + SLACK
