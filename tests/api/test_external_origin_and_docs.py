"""Behind a proxy that rewrites ``Host``, a browser's writes come from ``--external-url``'s
origin and are let through; and every route of the app, ``/openapi.json`` included, declares
the role it needs (the API's documents are declared open, on purpose)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from reconciler import web
from reconciler.api.app import create_app
from reconciler.api.auth import PUBLIC, AuthConfig, Role
from reconciler.api.hosts import external_origin
from reconciler.api.routing import GuardedRoute, required_role
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import STATIC_TOKENS, TestClient
from tests.api.fakes import FakeRuntime

EXTERNAL = "https://crontask.example.com/crontask/"
PROXIED = "http://127.0.0.1:8080"  # nginx's proxy_pass sends Host: 127.0.0.1:8080


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        (EXTERNAL, "https://crontask.example.com"),
        ("https://CronTask.Example.com:443", "https://crontask.example.com"),
        ("http://crontask.example.com:80/x", "http://crontask.example.com"),
        ("http://ct.example:8080", "http://ct.example:8080"),
        ("https://[::1]:8443/", "https://[::1]:8443"),
        ("ftp://ct.example", None),
        ("https://ct.example:99999", None),
        ("", None),
        (None, None),
    ],
)
def test_the_origin_of_the_external_url(url: str | None, origin: str | None) -> None:
    assert external_origin(url) == origin


def app_behind_proxy(runtime: FakeRuntime, auth: AuthConfig) -> FastAPI:
    app = create_app(runtime, auth=auth, metrics=Metrics(), external_url=EXTERNAL)
    return web.install(app, web.Session(secure_cookie=True))


@pytest.fixture
def proxied(runtime: FakeRuntime, auth_config: AuthConfig) -> Iterator[TestClient]:
    with TestClient(app_behind_proxy(runtime, auth_config), base_url=PROXIED) as client:
        yield client


def browser(origin: str) -> dict[str, str]:
    return {"Origin": origin, "Sec-Fetch-Site": "same-origin"}


def test_signing_in_through_a_proxy_that_rewrites_host(proxied: TestClient) -> None:
    form = {"token": STATIC_TOKENS[Role.VIEWER], "next": "/"}
    signed_in = proxied.post(
        "/login", data=form, headers=browser("https://crontask.example.com"), follow_redirects=False
    )
    assert signed_in.status_code == 303, signed_in.text
    elsewhere = proxied.post(
        "/login", data=form, headers=browser("https://evil.example"), follow_redirects=False
    )
    assert elsewhere.status_code == 403


def test_an_api_write_through_a_proxy_that_rewrites_host(proxied: TestClient) -> None:
    bearer = {"Authorization": f"Bearer {STATIC_TOKENS[Role.OPERATOR]}"}
    for origin, refused in [
        ("https://crontask.example.com", False),
        ("http://crontask.example.com", True),  # another scheme is another origin
        ("https://crontask.example.com:8443", True),
        ("https://evil.example", True),
    ]:
        response = proxied.post(
            "/api/v1/tasks/default/hello/runs", headers={**bearer, **browser(origin)}
        )
        assert response.status_code == (403 if refused else 202), (origin, response.text)


def test_every_route_declares_its_role(runtime: FakeRuntime, auth_config: AuthConfig) -> None:
    app = create_app(runtime, auth=auth_config, metrics=Metrics())
    declared = {}
    for route in app.routes:  # FastAPI's own /openapi.json was a plain route
        assert isinstance(route, GuardedRoute), route
        declared[route.path] = required_role(route)
    assert declared["/openapi.json"] == PUBLIC


def test_the_api_documents_stay_open_with_auth(proxied: TestClient) -> None:
    # The status page links to /docs, which a browser loads with no bearer token.
    assert proxied.get("/api/v1/tasks").status_code == 401
    for path in ("/openapi.json", "/docs", "/redoc", "/docs/assets/favicon.png"):
        assert proxied.get(path).status_code == 200, path
    assert "/api/v1/tasks" in proxied.get("/openapi.json").json()["paths"]
