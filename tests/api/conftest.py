"""Fixtures for the API tests: a fake runtime, auth files, tokens and JWTs of every role."""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig, Role
from reconciler.sinks.metrics import Metrics
from tests.api.fakes import FakeRuntime, record, view
from tests.uvicorn_app import uvicorn_serving

with warnings.catch_warnings():
    # Starlette's TestClient prefers the httpx2 fork, which is not installed; httpx works.
    warnings.filterwarnings(
        "ignore",
        message="Using `httpx` with `starlette.testclient`",
        category=StarletteDeprecationWarning,
    )
    from fastapi.testclient import TestClient

ISSUER = "https://issuer.example"
AUDIENCE = "crontask"
HS_SECRET = b"0123456789abcdef0123456789abcdef-test-secret"
STATIC_TOKENS = {role: f"static-{role.value}-token-{'x' * 20}" for role in Role}
BAD_TOKEN = "not-a-known-token"  # noqa: S105

__all__ = ["TestClient"]


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture(scope="session")
def es_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def write_auth(
    folder: Path,
    *,
    algorithm: str = "HS256",
    es_key: ec.EllipticCurvePrivateKey | None = None,
    metrics_require_auth: bool = False,
    extra: str = "",
) -> Path:
    tokens = "\n".join(
        f"  - {{name: {role.value}-bot, sha256: {sha256(t)}, role: {role.value}}}"
        for role, t in STATIC_TOKENS.items()
    )
    if algorithm.startswith("HS"):
        (folder / "jwt-secret").write_bytes(HS_SECRET + b"\n")
        key_line = "secretFile: jwt-secret"
    else:
        assert es_key is not None
        pem = es_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (folder / "jwt.pub").write_bytes(pem)
        key_line = "publicKeyFile: jwt.pub"
    path = folder / "auth.yaml"
    path.write_text(
        f"tokens:\n{tokens}\n"
        f"jwt:\n  algorithm: {algorithm}\n  {key_line}\n  issuer: {ISSUER}\n"
        f"  audience: {AUDIENCE}\n  roleClaim: role\n"
        f"metricsRequireAuth: {str(metrics_require_auth).lower()}\n{extra}"
    )
    return path


def make_jwt(
    role: str | None = "viewer",
    /,
    *,
    key: Any = HS_SECRET,
    algorithm: str = "HS256",
    expires_in: float = 3600,
    **claims: Any,
) -> str:
    # An hour by default: tokens made in a parametrize list are made at collection, and a
    # test of a long run (2 cores, 5 000 tests) may come more than 5 minutes later.
    now = int(time.time())
    body: dict[str, Any] = {
        "sub": f"user-{role}",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + int(expires_in),
    }
    if role is not None:
        body["role"] = role
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm)


@pytest.fixture
def runtime() -> FakeRuntime:
    rt = FakeRuntime(
        [
            view("hello"),
            view("backup", "ops", kind="git", zone="Europe/Berlin"),
            view("broken", "ops", error="tasks/broken.yaml:7:19: spec.schedule: bad"),
            view("paused", suspended=True),
            view("mine", kind="api"),
        ]
    )
    rt.store.claim(record("default/hello"))
    return rt


@pytest.fixture
def auth_config(tmp_path: Path) -> AuthConfig:
    return AuthConfig.load(write_auth(tmp_path))


AppFactory = Callable[..., FastAPI]


@pytest.fixture
def make_app(runtime: FakeRuntime) -> AppFactory:
    def factory(auth: AuthConfig | None = None, rt: FakeRuntime | None = None) -> FastAPI:
        return create_app(rt or runtime, auth=auth, metrics=Metrics())

    return factory


@pytest.fixture
def client(make_app: AppFactory) -> Iterator[TestClient]:
    with TestClient(make_app(), raise_server_exceptions=False) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def server(runtime: FakeRuntime, auth_config: AuthConfig) -> Iterator[str]:
    """The API of ``runtime`` served by real uvicorn on 127.0.0.1: its base URL."""
    with uvicorn_serving(create_app(runtime, auth=auth_config, metrics=Metrics())) as url:
        yield url
