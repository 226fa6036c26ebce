"""DNS rebinding with ``--auth-config``: the open routes of a loopback crontask answer only its
own names.

A web page whose name was made to resolve to 127.0.0.1 reaches crontask in a browser as a
same-origin page (``Host: <its name>``). It holds no credential (a cookie is kept for the
name it was set by, and the page knows no token), so routes that need one keep it out; but
the open routes (``/metrics`` unless ``metricsRequireAuth``, the API's description, the
sign-in page, the probes) it could read. Those answer ``421`` to any other name, as the whole
API does without auth; routes that need a credential answer whatever the ``Host``, so an API
client behind a proxy that forwards its own ``Host`` goes on working. Requests go through
``http.client``, which sends the ``Host`` header as given, to the real ``crontask run``.
"""

from __future__ import annotations

import hashlib
import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Crontask

pytestmark = pytest.mark.e2e

TOKEN = "viewer-token-0123456789"  # noqa: S105
EXTERNAL = "crontask.example.com"
OPEN_ROUTES = ["/metrics", "/openapi.json", "/docs", "/login", "/healthz", "/static/crontask.css"]


def send(app: Crontask, path: str, host: str, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=20)
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def start(tmp_path: Path, *extra: str, metrics_require_auth: bool = False) -> Crontask:
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    config = tmp_path / "auth.yaml"
    config.write_text(
        f"tokens:\n  - {{name: viewer, sha256: '{digest}', role: viewer}}\n"
        f"metricsRequireAuth: {str(metrics_require_auth).lower()}\n"
    )
    tasks = tmp_path / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    return Crontask(tmp_path, tasks, ["--auth-config", str(config), *extra]).start()


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Crontask]:
    app = start(tmp_path, "--external-url", f"https://{EXTERNAL}:8443/crontask")
    yield app
    app.stop()


def test_a_static_asset_exists(guarded: Crontask) -> None:
    """The asset the open-route cases ask for is one the page serves."""
    assert send(guarded, "/static/crontask.css", f"127.0.0.1:{guarded.port}") == 200


@pytest.mark.parametrize("path", OPEN_ROUTES)
def test_an_open_route_asked_for_another_host_is_misdirected(guarded: Crontask, path: str) -> None:
    assert send(guarded, path, f"attacker.example:{guarded.port}") == 421


@pytest.mark.parametrize("path", OPEN_ROUTES)
@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", EXTERNAL])
def test_an_open_route_answers_its_own_names(guarded: Crontask, path: str, host: str) -> None:
    assert send(guarded, path, host.format(port=guarded.port)) == 200


def test_a_route_that_needs_a_credential_answers_whatever_the_host(guarded: Crontask) -> None:
    """A rebinding page has no credential to show; a proxy that forwards its own ``Host``
    (Caddy's and Traefik's default) carries an API client's token as before."""
    proxied = "crontask.internal.example"
    assert send(guarded, "/api/v1/tasks", proxied) == 401
    assert send(guarded, "/api/v1/tasks", proxied, {"Authorization": f"Bearer {TOKEN}"}) == 200
    assert send(guarded, "/", proxied) == 303  # the page: to /login (which says 421)
    assert "path=/metrics status=421" not in guarded.log()
    send(guarded, "/metrics", proxied)
    guarded.wait_log("path=/metrics status=421")  # refused, and logged


def test_metrics_that_need_a_credential_answer_whatever_the_host(tmp_path: Path) -> None:
    app = start(tmp_path, metrics_require_auth=True)
    try:
        assert send(app, "/metrics", "attacker.example") == 401
        assert (
            send(app, "/metrics", "attacker.example", {"Authorization": f"Bearer {TOKEN}"}) == 200
        )
        assert send(app, "/healthz", "attacker.example") == 421  # still open, still checked
    finally:
        app.stop()
