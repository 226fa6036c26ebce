"""A status write that keeps failing says why: the ``status write failed; retrying`` line gives
the last attempt's error (each attempt's answer is only logged at debug), against the emulator
in an outage and against a port nobody listens on."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.core.status import ObjectRef
from reconciler.sinks.kubernetes import StatusWriter
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.support import crontask
from tests.k8s.test_status_writer import ref_of, setting


def retrying(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        getattr(r, "fields", {})
        for r in caplog.records
        if r.message == "status write failed; retrying"
    ]


def started(api: Any) -> StatusWriter:
    writer = StatusWriter(api, attempts=2, backoff=0.02, max_backoff=0.1)
    writer.start()
    return writer


@pytest.mark.usefixtures("real_crd")
def test_an_outage_is_named_in_the_retry_line(
    emulator: Emulator, k8s_api_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crontask.sinks")
    obj = client.CustomObjectsApi(k8s_api_client).create_namespaced_custom_object(
        API_GROUP, VERSION, "default", PLURAL, crontask("a", command={"args": ["true"]})
    )
    assert isinstance(obj, dict)
    writer = started(k8s_api_client)
    try:
        emulator.outage(status=503)
        writer.submit(ref_of(obj), setting(activeCount=3))
        (first, *_) = wait_for("a retry line", lambda: retrying(caplog))
        assert first["task"] == "default/a"
        assert first["error"] == "HTTP 503: Service Unavailable"
    finally:
        emulator.heal()
        writer.stop(timeout=2.0)


@pytest.fixture
def unanswered() -> Iterator[Any]:
    """An API client for a port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    api = client.ApiClient(configuration)
    try:
        yield api
    finally:
        api.close()  # type: ignore[no-untyped-call]


def test_a_connection_error_is_named_in_the_retry_line(
    unanswered: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="crontask.sinks")
    writer = started(unanswered)
    try:
        writer.submit(ObjectRef("default", "a", "uid-1", "1", 1), setting(activeCount=3))
        (first, *_) = wait_for("a retry line", lambda: retrying(caplog))
        assert first["error"].startswith("NewConnectionError: ")
        assert "Connection refused" in first["error"]
        assert len(first["error"]) <= 300
    finally:
        writer.stop(timeout=2.0)
