"""DNS rebinding without auth on every address: ``--listen 0.0.0.0 --insecure-no-auth``.

Without auth every caller is the admin. A web page whose name was made to resolve to this
machine's address reaches the API in a browser as a same-origin page (``Host: <its name>``),
and before this check it created a command task and ran it. On any address, a server without
auth now answers only an IP address, ``localhost``, ``--external-url``'s host and the
``--allow-host`` names; any other name is answered ``421``, as on loopback (``test_hosts.py``).
With auth nothing changed: any name is answered there (``test_hosts_with_auth.py``).
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest

from reconciler.api.hosts import names_answered
from tests.helpers import free_port, start_crontask_run, wait_for

pytestmark = pytest.mark.e2e

PATIENCE = 30.0
EXTERNAL = "crontask.example.com"
ALLOWED = "crontask.svc.example"
PWNED = {
    "apiVersion": "crontask.dev/v1alpha1",
    "kind": "CronTask",
    "metadata": {"name": "pwn", "namespace": "x"},
    "spec": {"schedule": "0 0 1 1 *", "command": {"args": ["id"]}},
}


class Server(NamedTuple):
    proc: subprocess.Popen[bytes]
    log: Path
    port: int
    state: Path


def send(
    server: Server, method: str, path: str, host: str, body: object = None
) -> tuple[int, bytes]:
    """``method path`` to 127.0.0.1 with ``Host: host``, as a browser page of that name sends
    it (its own origin, so same-origin to the browser): the status and the body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    try:
        origin = f"http://{host}"
        headers = {"Host": host, "Origin": origin, "Sec-Fetch-Site": "same-origin"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@contextmanager
def serving(folder: Path) -> Iterator[Server]:
    """A real ``crontask run`` without auth on every address, started in ``folder``."""
    port = free_port()  # free on 127.0.0.1, and handed to no other test of this run
    proc, log = start_crontask_run(
        folder,
        "--listen",
        f"0.0.0.0:{port}",
        "--insecure-no-auth",
        "--allow-host",
        ALLOWED,
        "--external-url",
        f"https://{EXTERNAL}:8443/crontask",
    )
    try:
        listening = f'msg="api listening" address=0.0.0.0:{port} '
        wait_for("the api listening line", lambda: listening in log.read_text(), PATIENCE)
        yield Server(proc, log, port, folder / "state")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(PATIENCE)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own: for tests that write, or count what the log says once."""
    with serving(tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that change nothing (a GET answered, a write refused, the
    start's warning): what one answers or says does not depend on the requests another test
    sent it, and a server took 5 to 14 s to start on two busy cores, ten times over with one
    each. A refused write that was taken fails its own test, which asserts it was not."""
    with serving(tmp_path_factory.mktemp("rebinding")) as running:
        yield running


def test_a_rebinding_page_can_neither_create_nor_run(shared_server: Server) -> None:
    server = shared_server
    rebound = f"rebind.attacker.example:{server.port}"
    for method, path, body in [
        ("GET", "/", None),
        ("GET", "/api/v1/tasks", None),
        ("POST", "/api/v1/tasks", PWNED),
        ("POST", "/api/v1/tasks/default/t/runs", None),
    ]:
        status, text = send(server, method, path, rebound, body)
        assert status == 421, (method, path, text)
    assert b"--allow-host" in text, text  # the refusal says how to answer a name
    own = f"127.0.0.1:{server.port}"
    assert send(server, "GET", "/api/v1/tasks/x/pwn", own)[0] == 404
    assert not (server.state / "api-tasks" / "x" / "pwn.yaml").exists()
    status, runs = send(server, "GET", "/api/v1/runs?task=default/t", own)
    assert status == 200, runs
    assert json.loads(runs)["items"] == [], runs
    assert "path=/api/v1/tasks status=421" in server.log.read_text()


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:{port}",
        "192.0.2.10:{port}",  # this machine's address as another one calls it
        "192.0.2.10",
        "[2001:db8::10]:{port}",
        "[::1]:{port}",
        "localhost:{port}",
        f"{ALLOWED}:{{port}}",
        f"{ALLOWED.upper()}.",
        f"{EXTERNAL}",
    ],
)
def test_an_address_an_allowed_name_and_the_external_name_are_answered(
    shared_server: Server, host: str
) -> None:
    port = shared_server.port
    assert send(shared_server, "GET", "/api/v1/tasks", host.format(port=port))[0] == 200


def test_an_address_and_an_allowed_name_can_create_and_run(server: Server) -> None:
    address = f"192.0.2.10:{server.port}"
    assert send(server, "POST", "/api/v1/tasks", address, PWNED)[0] == 201
    allowed = f"{ALLOWED}:{server.port}"
    assert send(server, "POST", "/api/v1/tasks/x/pwn/runs", allowed)[0] == 202


def test_the_warning_says_other_names_need_allow_host(shared_server: Server) -> None:
    text = shared_server.log.read_text()
    line = next(ln for ln in text.splitlines() if "without authentication" in ln)
    assert "--allow-host" in line, line


@pytest.mark.parametrize("listen", ["0.0.0.0", "::", "192.0.2.1", "127.0.0.1"])
def test_without_auth_every_address_answers_the_named_hosts_only(listen: str) -> None:
    """``names_answered`` as ``crontask run`` passes it: without auth, a list on every address
    (IP literals and loopback names are answered by the check itself); with auth, as before."""
    external = f"https://{EXTERNAL}:8443/crontask"
    assert names_answered(listen, external, [ALLOWED], authenticated=False) == [
        EXTERNAL,
        ALLOWED,
    ]
    with_auth = names_answered(listen, external, [ALLOWED], authenticated=True)
    assert with_auth == (None if listen != "127.0.0.1" else [EXTERNAL, ALLOWED])


def test_a_refused_name_is_logged_once_with_what_answers_it(server: Server) -> None:
    """The operator learns which name to give as ``--allow-host``: each refused name once (a
    page may send as many as it likes), worded for a server without auth, where ``'*'`` is no
    way out."""
    scanner = f"scanner.example:{server.port}"
    called = f"crontask.internal:{server.port}"
    for host in (scanner, called, called, scanner):
        assert send(server, "GET", "/metrics", host)[0] == 421
    wait_for(
        "the warning naming crontask.internal",
        lambda: "crontask.internal" in server.log.read_text(),
        PATIENCE,
    )
    refusals = [ln for ln in server.log.read_text().splitlines() if "answered 421" in ln]
    assert len(refusals) == 2, refusals  # once a name, not once a request
    assert "scanner.example" in refusals[0]
    assert "crontask.internal" in refusals[1]
    for line in refusals:
        assert "level=warning" in line, line
        assert "--allow-host NAME" in line, line
        assert "without --auth-config" in line, line
        assert "'*'" not in line, line  # refused without auth
        assert "loopback only" not in line, line
