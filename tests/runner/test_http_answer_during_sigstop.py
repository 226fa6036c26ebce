"""An http attempt in a real process stopped by SIGSTOP from just after its request went out
until past its deadline, its answer sent meanwhile: the answer is taken, the request sent once.

After SIGCONT the loop's first round reads nothing: the ``epoll_wait`` the stop interrupted
returns no event once its timeout has passed (CPython does not ask again), so only the
timers run, the deadline's and, had it one, httpx's read timeout's; the answer is read a round
later. The server (``tests.http_held``) says when it has the request and when it has answered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import wait_for
from tests.http_held import BOUND, HeldAnswer

# Long enough for the request to go out before it on a loaded machine (the stop must begin
# before it passes), the code on its way warmed up first as a running crontask has it.
TIMEOUT = 1.0

# Says (a line on stdout) when the attempt begins to wait for its answer's head, after a first
# attempt (to a port that refuses it) has imported and built what a first request needs.
_ATTEMPT = """
import json, sys
from reconciler import resolver
from reconciler.core.actions import HttpAction
from reconciler.runner import http_deadline
from reconciler.runner.http import HttpRun

traced = http_deadline.Deadline.trace

async def trace(self, event, info):
    await traced(self, event, info)
    if event == "http11.receive_response_headers.started":
        print("waiting", flush=True)

warm = HttpAction.model_validate({"url": "http://127.0.0.1:1/", "timeoutSeconds": 60})
resolver.run(HttpRun(warm, env={}).run())
http_deadline.Deadline.trace = trace
action = HttpAction.model_validate(
    {"method": "POST", "url": sys.argv[1], "body": "x", "timeoutSeconds": 60}
)
outcome = resolver.run(HttpRun(action, env={}, timeout=float(sys.argv[2])).run())
print(json.dumps([outcome.status.value, outcome.exit_code, outcome.message, outcome.output]))
"""


def test_an_answer_that_came_while_the_process_was_stopped_is_taken() -> None:
    server = HeldAnswer(b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\ndone\n")
    root = str(Path(__file__).resolve().parents[2])
    child = subprocess.Popen(
        [sys.executable, "-c", _ATTEMPT, server.url, str(TIMEOUT)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert child.stdout is not None
    try:
        assert server.received.wait(BOUND)
        assert child.stdout.readline() == b"waiting\n"
        # Stopped while its loop waits in epoll_wait, its read begun (and the timer of
        # httpx's read timeout armed, as it was), not before.
        wait_for("the attempt waiting", lambda: _in_epoll_wait(child.pid), BOUND)
        child.send_signal(signal.SIGSTOP)
        wait_for("the process stopped", lambda: _state(child.pid) == "T", BOUND)
        server.release.set()
        assert server.answered.wait(BOUND)
        time.sleep(TIMEOUT + 0.2)  # its deadline began before the request went out: it passed
        child.send_signal(signal.SIGCONT)
        out, _ = child.communicate(timeout=BOUND)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
        server.close()
    assert json.loads(out.decode().splitlines()[-1]) == [
        "succeeded",
        201,
        "HTTP 201 Created",
        "done\n",
    ]
    assert server.requests == 1


def _in_epoll_wait(pid: int) -> bool:
    """Whether ``pid``'s main thread sleeps in ``epoll_wait`` (where the kernel hides it: is
    asleep in a system call, ``epoll_wait`` the only one it makes from then on)."""
    task = Path(f"/proc/{pid}/task/{pid}")
    wchan = (task / "wchan").read_text()
    if wchan != "0":
        return wchan == "do_epoll_wait"
    return _state(pid) == "S"


def _state(pid: int) -> str:
    """The state of ``pid``'s main thread: ``S`` asleep, ``T`` stopped, ..."""
    return Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
