"""Builders shared by the test suites."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from reconciler.core.desired import Definition, Location
from reconciler.core.model import CronTask
from reconciler.runner.base import Actions
from reconciler.runner.command_runner import CommandRunner
from reconciler.runner.http import HttpRunner

T = TypeVar("T")


def task_doc(name: str = "t", namespace: str = "default", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"schedule": "* * * * *", "command": {"args": ["true"]}}
    body.update(spec)
    return {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def definition(
    name: str = "t", path: str = "a.yaml", line: int = 1, namespace: str = "default", **spec: Any
) -> Definition:
    task = CronTask.model_validate(task_doc(name, namespace, **spec))
    return Definition.of(task, Location("file", path, line, 1))


# free_port hands out ports below the kernel's ephemeral range (32768-60999 by default), each
# pytest-xdist worker from a block of its own. A port the kernel picks (``bind(0)``) is free
# only until the caller's child binds it; meanwhile any outgoing connection or ``bind(0)`` of
# another test may take it. Nothing takes a port of this range unasked, and each worker hands
# out only ports of its block, one after the other, so no two tests of a run race for one.
# Another run on the same machine at the same time starts at a random place in its blocks, and
# a port it has bound already is skipped.
PORT_BASE = 10_000
PORT_SPAN = 20_000  # 10000-29999
_next_port: list[int] = []


def port_block() -> range:
    """The ports this process hands out: its worker's share of the span."""
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")  # unset without -n
    index = int(worker) % workers if worker.isdigit() else 0
    size = PORT_SPAN // workers
    return range(PORT_BASE + index * size, PORT_BASE + (index + 1) * size)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now, and that no other test of this
    run will be handed (see above)."""
    block = port_block()
    if not _next_port:
        _next_port.append(random.randrange(len(block)))  # noqa: S311 - spreading, not security
    for _ in range(len(block)):
        port = block[_next_port[0]]
        _next_port[0] = (_next_port[0] + 1) % len(block)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # in use (or in TIME_WAIT): the next one
                continue
        return port
    raise RuntimeError(f"no free port in 127.0.0.1:{block.start}-{block.stop - 1}")


def local_actions(kill_grace: float = 10.0) -> Actions:
    """The actions ``crontask run`` builds, with this process's environment for commands."""
    return Actions([CommandRunner(os.environ, kill_grace=kill_grace), HttpRunner(os.environ)])


def wait_for(what: str, condition: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Poll ``condition`` every 20 ms until it returns something truthy, and return that; fail
    with ``what`` after ``timeout`` seconds. The conditions are observable effects (a file, a
    record, a log line, an object's status), so a test waits exactly as long as it needs."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def serve_http(
    handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None
) -> Iterator[str]:
    """A real HTTP (or, with ``tls``, HTTPS) server on a free loopback port, in a thread: its
    base URL, until the block ends."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    # A short poll: shutdown() waits for the serving loop to look up, 0.5 s by default.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def hanging_lookups(folder: Path, host: str, seconds: float = 60.0) -> str:
    """A ``PYTHONPATH`` under which a new Python interpreter's lookups of ``host`` hang for
    ``seconds`` (a ``sitecustomize`` written in ``folder``), with this checkout importable."""
    (folder / "sitecustomize.py").write_text(
        "import socket, time\n"
        "_getaddrinfo = socket.getaddrinfo\n"
        "def _hanging(host, *args, **kwargs):\n"
        f"    if host in ({host!r}, {host.encode()!r}):\n"
        f"        time.sleep({seconds!r})\n"
        "    return _getaddrinfo(host, *args, **kwargs)\n"
        "socket.getaddrinfo = _hanging\n"
    )
    return f"{folder}:{Path(__file__).parents[1]}"


def crontask_cli(
    *argv: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``crontask *argv`` in a new interpreter (``env``: its whole environment, else this
    one's), run to its end (a minute at most): its exit status and its output, as text.
    Whatever the status, the caller asserts it."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


NEVER_DUE = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: t}
spec:
  schedule: "0 0 1 1 *"
  command: {args: ["true"]}
"""


def start_crontask_run(
    folder: Path, *options: str, task: str | None = NEVER_DUE
) -> tuple[subprocess.Popen[bytes], Path]:
    """``crontask run tasks --state-dir state *options`` started in ``folder``, with ``task`` as
    ``tasks/t.yaml`` (by default one due at midnight on 1 January, so not during a test; None:
    an empty folder): the process, which the caller stops, and the file both its streams go to."""
    (folder / "tasks").mkdir()
    if task is not None:
        (folder / "tasks" / "t.yaml").write_text(task)
    log = folder / "log"
    argv = [sys.executable, "-m", "reconciler", "run", "tasks", "--state-dir", "state", *options]
    with log.open("w") as out:
        return subprocess.Popen(argv, cwd=folder, stdout=out, stderr=out), log


def pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink`` until ``source`` ends, then end ``sink``'s sending side: one
    direction of a TCP forwarder or proxy in a test (a thread each way)."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def serving(folder: Path, *options: str) -> Iterator[str]:
    """``crontask run tasks *options`` started in ``folder`` (which holds ``tasks``), with
    its API on a free loopback port: the API's URL once it says it is listening, until the
    block ends (then SIGTERM). Its stderr is read only until then: a test that needs the log
    after starts it with :func:`start_crontask_run`."""
    address = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "reconciler", "run", "tasks", "--listen", address, *options]
    proc = subprocess.Popen(argv, cwd=folder, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines = []
    try:
        for line in proc.stderr:  # served once it says so
            lines.append(line)
            if "api listening" in line:
                break
        else:
            raise AssertionError("".join(lines))
        yield f"http://{address}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
