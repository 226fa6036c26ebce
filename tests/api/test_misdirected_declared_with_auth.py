"""With ``--auth-config`` on loopback, the API's description declares ``421`` exactly where the
Host check can answer it: on the open operations, not on those that need a credential (which
answer whatever the ``Host``, see ``hosts.py``). In process: what is checked is the document
and the answers of one app."""

from __future__ import annotations

from pathlib import Path

from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig, Role
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import STATIC_TOKENS, TestClient, write_auth
from tests.api.fakes import FakeRuntime

OPEN = [("/healthz", "get"), ("/readyz", "get"), ("/metrics", "get")]
GUARDED = [("/api/v1/tasks", "get"), ("/api/v1/tasks", "post")]


def test_421_is_declared_on_the_open_operations_only(runtime: FakeRuntime, tmp_path: Path) -> None:
    auth = AuthConfig.load(write_auth(tmp_path))
    app = create_app(runtime, auth=auth, metrics=Metrics(), hosts=["ct.example"])
    bearer = {"authorization": f"Bearer {STATIC_TOKENS[Role.VIEWER]}"}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        doc = client.get("/openapi.json").json()
        # What the document says is what the server does.
        assert client.get("/healthz", headers={"host": "evil.example"}).status_code == 421
        answered = client.get("/api/v1/tasks", headers={"host": "evil.example", **bearer})
        assert answered.status_code == 200
    for path, method in OPEN:
        assert "421" in doc["paths"][path][method]["responses"], (path, method)
    for path, method in GUARDED:
        assert "421" not in doc["paths"][path][method]["responses"], (path, method)
