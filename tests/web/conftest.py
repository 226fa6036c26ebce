"""Fixtures for the page tests: the API app with the page installed, over a FakeRuntime."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI

from reconciler import web
from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig
from reconciler.core.runs import RunStatus
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime, record, view

PageFactory = Callable[..., FastAPI]
NOW = T0 + timedelta(minutes=30)


@pytest.fixture
def runtime() -> FakeRuntime:
    rt = FakeRuntime(
        [
            view("hello", schedule="*/5 * * * *"),
            view("backup", "ops", kind="git", zone="Europe/Berlin", schedule="0 2 * * *"),
            view("broken", "ops", error="tasks/broken.yaml:7:19: spec.schedule: bad"),
            view("paused", suspended=True),
            view("flaky", "ops"),
        ]
    )
    for minutes in range(3):
        rt.store.claim(record("default/hello", T0 - timedelta(minutes=5 * minutes)))
    rt.store.claim(record("ops/flaky", T0 - timedelta(minutes=1), RunStatus.SUCCEEDED))
    rt.store.claim(record("ops/flaky", T0, RunStatus.FAILED, output="boom\n"))
    return rt


@pytest.fixture
def make_page(runtime: FakeRuntime) -> PageFactory:
    def factory(auth: AuthConfig | None = None) -> FastAPI:
        app = create_app(runtime, auth=auth, metrics=Metrics())
        return web.install(app, clock=lambda: NOW)

    return factory


@pytest.fixture
def page(make_page: PageFactory) -> Iterator[TestClient]:
    with TestClient(make_page(), raise_server_exceptions=True) as client:
        yield client
