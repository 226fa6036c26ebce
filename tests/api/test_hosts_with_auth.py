"""DNS rebinding with auth: a ``crontask run`` on loopback answers only its own names.

With ``--auth-config`` a credential keeps the tasks in, but some routes answer without one:
``/metrics``, ``/healthz``, ``/readyz``, ``/openapi.json``, ``/docs``, the sign-in page. A web
page whose name was made to resolve to 127.0.0.1 read them in a browser as its own
(``Host: <its name>``): a server that listens on loopback only answers ``421`` to such a
request, credential or not, as it does without auth (``test_hosts.py``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Crontask

pytestmark = pytest.mark.e2e

TOKEN = "operator-token-0123456789"  # noqa: S105
EXTERNAL = "crontask.example.com"
# Each answers without a credential: what a rebinding page could read.
OPEN_PATHS = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/redoc",
    "/login",
    "/static/crontask.js",
]


def send(
    app: Crontask, method: str, path: str, host: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=20)
    try:
        conn.request(method, path, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _files(tmp_path: Path) -> tuple[Path, Path]:
    """An auth file with an operator's token, and an empty folder of tasks."""
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    config = tmp_path / "auth.yaml"
    config.write_text(f"tokens:\n  - {{name: ops, sha256: '{digest}', role: operator}}\n")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    return config, tasks


def _auth_app(folder: Path) -> Iterator[Crontask]:
    config, tasks = _files(folder)
    external = f"https://{EXTERNAL}:8443/crontask"
    app = Crontask(
        folder, tasks, ["--auth-config", str(config), "--external-url", external]
    ).start()
    yield app
    app.stop()


@pytest.fixture
def auth_app(tmp_path: Path) -> Iterator[Crontask]:
    """A server of the test's own: for a test that counts what the log says once a name."""
    yield from _auth_app(tmp_path)


@pytest.fixture(scope="module")
def shared_auth_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crontask]:
    """One server for the tests that only send requests and read their answers: a name is
    answered or refused whatever names came before it (only the log's once-a-name line keeps
    a memory), and a server took 6 to 10 s to start on two busy cores, fourteen times over."""
    yield from _auth_app(tmp_path_factory.mktemp("hosts-with-auth"))


@pytest.mark.parametrize("path", OPEN_PATHS)
def test_what_answers_without_a_credential_is_not_read_under_another_name(
    shared_auth_app: Crontask, path: str
) -> None:
    rebound = f"attacker.example:{shared_auth_app.port}"
    assert send(shared_auth_app, "GET", path, rebound)[0] == 421
    assert send(shared_auth_app, "GET", path, f"127.0.0.1:{shared_auth_app.port}")[0] == 200


def test_a_credential_does_not_make_another_name_answered(shared_auth_app: Crontask) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    rebound = f"attacker.example:{shared_auth_app.port}"
    assert send(shared_auth_app, "GET", "/api/v1/tasks", rebound, bearer)[0] == 421
    assert send(shared_auth_app, "POST", "/login", rebound)[0] == 421


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST.:{port}", "[::1]:{port}", EXTERNAL],
)
def test_with_auth_its_own_names_are_answered(shared_auth_app: Crontask, host: str) -> None:
    """``--external-url``'s host: the name a proxy on this machine forwards with."""
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    own = host.format(port=shared_auth_app.port)
    assert send(shared_auth_app, "GET", "/metrics", own)[0] == 200
    assert send(shared_auth_app, "GET", "/api/v1/tasks", own, bearer)[0] == 200
    assert send(shared_auth_app, "GET", "/api/v1/tasks", own)[0] == 401


def test_the_refusal_says_what_to_set(auth_app: Crontask) -> None:
    """An installation behind a proxy that forwards its own name, upgraded: the answer and the
    log say which option makes that name answered, even after a scanner's name came first."""
    assert send(auth_app, "GET", "/", f"scanner.example:{auth_app.port}")[0] == 421
    proxied = f"crontask.internal:{auth_app.port}"
    for _ in range(2):
        status, body = send(auth_app, "GET", "/healthz", proxied)
        assert status == 421
    detail = json.loads(body)["detail"]
    assert "'crontask.internal:" in detail
    assert "--allow-host NAME" in detail
    assert "--auth-config" not in detail  # it is configured: not the way out
    auth_app.wait_log("crontask.internal")
    refusals = [line for line in auth_app.log().splitlines() if "answered 421" in line]
    assert len(refusals) == 2, refusals  # once a name, not once a request
    assert "scanner.example" in refusals[0]
    assert "level=warning" in refusals[1]
    assert "crontask.internal" in refusals[1]
    assert "--allow-host NAME" in refusals[1]


def test_the_names_a_proxy_forwards_can_be_allowed(tmp_path: Path) -> None:
    """A sidecar proxy that keeps the Host it was sent (the pod's address, a Service's name)."""
    config, tasks = _files(tmp_path)
    named = ["--allow-host", "10.1.2.3", "--allow-host", "Crontask.Ops.Svc."]
    app = Crontask(tmp_path, tasks, ["--auth-config", str(config), *named]).start()
    try:
        for host in ("10.1.2.3:9100", "crontask.ops.svc", f"127.0.0.1:{app.port}"):
            assert send(app, "GET", "/metrics", host)[0] == 200, host
        assert send(app, "GET", "/metrics", "attacker.example")[0] == 421
    finally:
        app.stop()


def test_any_name_can_be_allowed_with_auth(tmp_path: Path) -> None:
    config, tasks = _files(tmp_path)
    app = Crontask(tmp_path, tasks, ["--auth-config", str(config), "--allow-host", "*"]).start()
    try:
        assert send(app, "GET", "/healthz", "anything.example")[0] == 200
        assert send(app, "GET", "/api/v1/tasks", "anything.example")[0] == 401
    finally:
        app.stop()


def test_any_name_without_auth_is_refused_at_start(tmp_path: Path) -> None:
    """Without auth every caller is the admin: any name would let a rebinding page act as one."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    command = [sys.executable, "-m", "reconciler", "run", str(tasks), "--allow-host", "*"]
    command += ["--state-dir", str(tmp_path / "state"), "--listen", "127.0.0.1:0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "--allow-host '*' needs --auth-config" in done.stderr


def test_on_every_address_any_name_is_answered(tmp_path: Path) -> None:
    """``--listen 0.0.0.0``: the machine's names and addresses all reach it, and none can be
    known; auth keeps strangers out, as before (``hosts.names_answered``)."""
    config, tasks = _files(tmp_path)
    # Crontask listens on 127.0.0.1:PORT, its last argument: this wrapper makes it 0.0.0.0:PORT.
    every = "import os, sys; a = sys.argv[1:]; a[-1] = '0.0.0.0:' + a[-1].rpartition(':')[2]; "
    wrapper = [sys.executable, "-c", every + "os.execv(a[0], a)"]
    app = Crontask(tmp_path, tasks, ["--auth-config", str(config)], wrapper=wrapper).start()
    try:
        app.wait_log("address=0.0.0.0:")
        rebound = f"attacker.example:{app.port}"
        assert send(app, "GET", "/healthz", rebound)[0] == 200
        assert send(app, "GET", "/api/v1/tasks", rebound)[0] == 401
        assert "answered 421" not in app.log()
    finally:
        app.stop()
