"""Every operation in the OpenAPI document x every kind of caller -> the status its declared role
implies. Built from the document itself, so a new route is covered (and must declare a role)
the moment it exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from reconciler.api.auth import PUBLIC, REQUIRED_ROLE_KEY, AuthConfig, Role
from tests.api.conftest import (
    BAD_TOKEN,
    HS_SECRET,
    STATIC_TOKENS,
    AppFactory,
    TestClient,
    bearer,
    make_jwt,
    write_auth,
)
from tests.helpers import task_doc

METHODS = ("get", "post", "put", "delete", "patch")
PATH_VALUES = {"namespace": "default", "name": "mine", "run_id": "default.hello.20261127T010000Z"}


def caller_kinds(
    algorithm: str, es_key: ec.EllipticCurvePrivateKey
) -> list[tuple[str, dict[str, str], str]]:
    """(label, headers, role; "" = no valid credential, "none" = valid but no crontask role)
    for a server whose JWTs are ``algorithm`` (HS256 with HS_SECRET, or ES256 with es_key)."""
    key: Any = HS_SECRET if algorithm == "HS256" else es_key

    def signed(role: str | None, /, **claims: Any) -> dict[str, str]:
        return bearer(make_jwt(role, key=key, algorithm=algorithm, **claims))

    other_alg = (
        make_jwt("admin", key=es_key, algorithm="ES256")
        if algorithm == "HS256"
        else make_jwt("admin", key=HS_SECRET, algorithm="HS256")
    )
    kinds: list[tuple[str, dict[str, str], str]] = [
        ("no token", {}, ""),
        ("unknown token", bearer(BAD_TOKEN), ""),
        ("empty bearer", {"Authorization": "Bearer "}, ""),
        ("basic auth", {"Authorization": "Basic dXNlcjpwYXNz"}, ""),
        ("expired jwt", signed("admin", expires_in=-120), ""),
        ("jwt wrong audience", signed("admin", aud="other"), ""),
        ("jwt wrong issuer", signed("admin", iss="https://evil.example"), ""),
        ("jwt no exp", signed("admin", exp=None), ""),
        ("jwt no sub", signed("admin", sub=None), ""),
        ("jwt alg none", bearer(make_jwt("admin", key=None, algorithm="none")), ""),
        ("jwt of another algorithm", bearer(other_alg), ""),
        ("jwt wrong key", bearer(make_jwt("admin", key=b"y" * 40)), ""),
        ("jwt unknown role", signed("superuser"), "none"),
        ("jwt no role", signed(None), "none"),
        ("jwt role list", signed(None, role=["viewer", "operator"]), "operator"),
    ]
    for role in Role:
        kinds.append((f"static {role}", bearer(STATIC_TOKENS[role]), role.value))
        kinds.append((f"{algorithm} jwt {role}", signed(role.value), role.value))
    return kinds


def operations(app_client: TestClient) -> list[tuple[str, str, str]]:
    doc = app_client.get("/openapi.json").json()
    ops = []
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                role = item[method].get(REQUIRED_ROLE_KEY)
                assert role in {PUBLIC, *Role}, f"{method.upper()} {path} declares no role"
                if role != PUBLIC:
                    assert item[method].get("security") == [{"bearerAuth": []}], path
                    assert {"401", "403"} <= set(item[method]["responses"]), path
                ops.append((method, path, role))
    return ops


def call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    url = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)
    body: dict[str, Any] | None = None
    if method in {"post", "put"} and not url.endswith("/runs"):
        body = task_doc("mine")
    response = client.request(method.upper(), url, headers=headers, json=body)
    return int(response.status_code)


def expected(required: str, caller_role: str) -> set[int] | None:
    """The statuses the caller may get, or None for "anything but 401/403 (and not 5xx)"."""
    if required == PUBLIC:
        return None
    if caller_role == "":
        return {401}
    if caller_role == "none" or not Role(caller_role).allows(Role(required)):
        return {403}
    return None


@pytest.mark.parametrize(("algorithm", "metrics_require_auth"), [("HS256", False), ("ES256", True)])
def test_every_operation_enforces_its_declared_role(
    tmp_path: Path,
    make_app: AppFactory,
    es_key: ec.EllipticCurvePrivateKey,
    algorithm: str,
    metrics_require_auth: bool,
) -> None:
    path = write_auth(
        tmp_path, algorithm=algorithm, es_key=es_key, metrics_require_auth=metrics_require_auth
    )
    failures = []
    with TestClient(make_app(AuthConfig.load(path))) as client:
        ops = operations(client)
        assert len(ops) >= 10
        assert ("get", "/metrics", "viewer" if metrics_require_auth else PUBLIC) in ops
        for method, op_path, required in ops:
            for label, headers, caller_role in caller_kinds(algorithm, es_key):
                status = call(client, method, op_path, headers)
                allowed = expected(required, caller_role)
                ok = status < 500 and (
                    status not in {401, 403} if allowed is None else status in allowed
                )
                if not ok:
                    failures.append(f"{method.upper()} {op_path} as {label}: {status}")
    assert not failures, "\n".join(failures)


def test_es256_jwt(
    tmp_path: Path, make_app: AppFactory, es_key: ec.EllipticCurvePrivateKey
) -> None:
    auth = AuthConfig.load(write_auth(tmp_path, algorithm="ES256", es_key=es_key))
    with TestClient(make_app(auth)) as client:
        for role in Role:
            token = make_jwt(role.value, key=es_key, algorithm="ES256")
            assert client.get("/api/v1/tasks", headers=bearer(token)).status_code == 200
            status = client.post("/api/v1/tasks/default/hello/runs", headers=bearer(token))
            assert status.status_code == (202 if role.allows(Role.OPERATOR) else 403)
        # An HS256 token signed with the public key (the classic confusion attack) is refused.
        forged = make_jwt("admin", key=HS_SECRET)
        assert client.get("/api/v1/tasks", headers=bearer(forged)).status_code == 401
        other = ec.generate_private_key(ec.SECP256R1())
        wrong = make_jwt("admin", key=other, algorithm="ES256")
        assert client.get("/api/v1/tasks", headers=bearer(wrong)).status_code == 401


def test_401_says_bearer_and_is_a_problem(make_app: AppFactory, auth_config: AuthConfig) -> None:
    with TestClient(make_app(auth_config)) as client:
        for headers in ({}, bearer(BAD_TOKEN)):
            response = client.get("/api/v1/tasks", headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"] == "https://crontask.dev/problems/unauthorized"
        response = client.delete(
            "/api/v1/tasks/default/mine", headers=bearer(STATIC_TOKENS[Role.OPERATOR])
        )
        assert response.status_code == 403
        assert "operator-bot has role operator; this needs admin" in response.json()["detail"]


def test_open_routes_stay_open_with_auth(make_app: AppFactory, auth_config: AuthConfig) -> None:
    with TestClient(make_app(auth_config)) as client:
        for path in ("/healthz", "/readyz", "/docs", "/openapi.json", "/metrics"):
            assert client.get(path).status_code == 200, path
            assert client.get(path, headers=bearer(BAD_TOKEN)).status_code == 200, path


def test_auth_runs_before_body_validation(make_app: AppFactory, auth_config: AuthConfig) -> None:
    with TestClient(make_app(auth_config)) as client:
        response = client.post(
            "/api/v1/tasks", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert response.status_code == 401


def test_without_auth_everything_is_open_and_no_scheme_is_declared(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "securitySchemes" not in doc.get("components", {})
    assert client.delete("/api/v1/tasks/default/mine").status_code == 204


EXPECTED_ROLES = {
    ("get", "/healthz"): PUBLIC,
    ("get", "/readyz"): PUBLIC,
    ("get", "/metrics"): PUBLIC,
    ("get", "/api/v1/tasks"): "viewer",
    ("get", "/api/v1/tasks/{namespace}/{name}"): "viewer",
    ("get", "/api/v1/runs"): "viewer",
    ("get", "/api/v1/runs/{run_id}"): "viewer",
    ("post", "/api/v1/tasks/{namespace}/{name}/runs"): "operator",
    ("post", "/api/v1/tasks"): "admin",
    ("put", "/api/v1/tasks/{namespace}/{name}"): "admin",
    ("delete", "/api/v1/tasks/{namespace}/{name}"): "admin",
    ("get", "/api/v1/sources"): "viewer",
    ("get", "/api/v1/members"): "viewer",
    ("post", "/api/v1/plan"): "viewer",  # a dry run: it reads, and changes nothing
    # Or a valid X-Hub-Signature-256 instead of a token (tests/api/test_sources.py).
    ("post", "/api/v1/hooks/git"): "operator",
}


def test_declared_roles_are_the_intended_ones(
    make_app: AppFactory, auth_config: AuthConfig
) -> None:
    """A new route, or a changed role, must be a decision: add it here."""
    with TestClient(make_app(auth_config)) as client:
        declared = {(m, p): r for m, p, r in operations(client)}
    assert declared == EXPECTED_ROLES
