"""Probes answer whatever the ``Host``, without auth; the rest keeps its ``421``.

Without auth, a request whose ``Host`` names no address, loopback name or allowed name is
answered ``421`` (DNS rebinding: ``hosts.py``). A kubelet's httpGet probe names the pod's
address, which is answered; a load balancer's health check or a monitor sends whatever name it
was given, and a probe refused is a pod never ready, or restarted. ``/healthz`` and ``/readyz``
change nothing, so they are answered for any name; ``/readyz`` then says only ready or not
(no check names: which part fails is for the operator's own callers). ``/metrics``, the API,
the page and the documents still answer such a name ``421``; with auth nothing changed
(``test_hosts_with_auth.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig
from reconciler.api.hosts import names_answered
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import TestClient
from tests.api.fakes import FakeRuntime

ALLOWED = "crontask.svc.example"
LB = "lb-health.example:8080"  # a load balancer's health check, by the name it was given
KUBELET = "10.244.1.7:8080"  # a kubelet's httpGet probe: the pod's address


def client_of(runtime: FakeRuntime, auth: AuthConfig | None = None) -> TestClient:
    """The app as ``crontask run`` builds it on loopback, ``--allow-host ALLOWED``."""
    hosts = names_answered("127.0.0.1", None, [ALLOWED], authenticated=auth is not None)
    app = create_app(runtime, auth=auth, metrics=Metrics(), hosts=hosts)
    return TestClient(app, base_url="http://127.0.0.1:8080", raise_server_exceptions=False)


@pytest.fixture
def open_client(runtime: FakeRuntime) -> Iterator[TestClient]:
    with client_of(runtime) as client:
        yield client


@pytest.mark.parametrize("host", [LB, "LB-Health.Example.", KUBELET, "[fd00::7]:8080"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_without_auth_healthz_answers_any_host(
    open_client: TestClient, host: str, method: str
) -> None:
    response = open_client.request(method, "/healthz", headers={"host": host})
    assert response.status_code == 200, response.text
    if method == "GET":
        assert response.json() == {"status": "ok"}


def test_without_auth_readyz_answers_another_name_with_its_status_alone(
    open_client: TestClient, runtime: FakeRuntime
) -> None:
    ready = open_client.get("/readyz", headers={"host": LB})
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"ready": True, "checks": {}}  # the schema's shape, no check named
    assert open_client.head("/readyz", headers={"host": LB}).status_code == 200

    runtime.checks["store"] = False
    unready = open_client.get("/readyz", headers={"host": LB})
    assert unready.status_code == 503, unready.text
    assert unready.headers["content-type"] == "application/problem+json"
    body = unready.json()
    assert body["ready"] is False
    assert body["checks"] == {}
    assert body["detail"] == "not ready"
    assert "store" not in unready.text  # what fails is not said to a stranger's name


@pytest.mark.parametrize("host", ["127.0.0.1:8080", f"{ALLOWED}:8080", KUBELET])
def test_readyz_says_its_checks_to_the_names_answered(
    open_client: TestClient, runtime: FakeRuntime, host: str
) -> None:
    ready = open_client.get("/readyz", headers={"host": host})
    assert ready.json() == {
        "ready": True,
        "checks": {"sources": True, "scheduler": True, "store": True},
    }
    runtime.checks["store"] = False
    unready = open_client.get("/readyz", headers={"host": host})
    assert unready.status_code == 503
    assert unready.json()["detail"] == "not ready: store"
    assert unready.json()["checks"]["store"] is False


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/metrics"),
        ("GET", "/api/v1/tasks"),
        ("GET", "/"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("POST", "/api/v1/tasks/default/hello/runs"),
        # Only what a probe sends: no write, no other spelling of the path.
        ("POST", "/healthz"),
        ("DELETE", "/readyz"),
        ("GET", "/healthz/"),
        ("GET", "/readyz/"),
    ],
)
def test_without_auth_the_rest_still_refuses_another_name(
    open_client: TestClient, method: str, path: str
) -> None:
    response = open_client.request(method, path, headers={"host": LB})
    assert response.status_code == 421, (path, response.text)


def test_with_auth_on_loopback_probes_keep_their_421(
    runtime: FakeRuntime, auth_config: AuthConfig
) -> None:
    """With auth, a server that checks the ``Host`` listens on loopback only, where no load
    balancer probes it; nothing changed there."""
    with client_of(runtime, auth_config) as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert client.get(path, headers={"host": LB}).status_code == 421, path
            assert client.get(path, headers={"host": "127.0.0.1:8080"}).status_code == 200
