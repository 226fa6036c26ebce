"""After an outage (the API server's port refusing connections), the informer's error and its
count of failures go as soon as its watch is answered again, not when that watch ends (up to
timeoutSeconds later): ``/api/v1/sources`` does not show an error the source is past, and a
later failure's warning does not count the old outage's. A watch answered that fails at once
(an ``ERROR`` event, every time) is a failure more each time, though: its count goes only once
a watch makes progress."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.sources.kubernetes import list_function
from reconciler.sources.kubernetes_watch import Backoff, Informer
from tests.helpers import serve_http, wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.gate import gated
from tests.k8s.support import crontask


@pytest.mark.usefixtures("real_crd")
def test_the_outage_s_error_goes_once_the_watch_is_answered(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    objects = client.CustomObjectsApi(k8s_api_client)
    objects.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, crontask("a"))
    with gated(emulator) as (gate, api):
        informer = Informer(
            list_function(api, "default"),
            on_change=lambda keys: None,
            backoff=Backoff(initial=0.02, cap=0.1),
        )
        try:
            assert informer.start(wait=10.0)
            gate.close()
            wait_for("three failed watches", lambda: informer.failures >= 3)
            assert (informer.last_error or "").startswith("MaxRetryError: ")

            gate.open()
            # Its event comes through a watch opened after the outage (no re-list: none is due).
            lists = informer.lists
            objects.create_namespaced_custom_object(
                API_GROUP, VERSION, "default", PLURAL, crontask("b")
            )
            wait_for("b", lambda: informer.snapshot(["default/b"]))
            assert informer.lists == lists
            # That watch is open (watch_seconds: 300): the source works, and says so (the
            # failures go with the event it delivered, just after the cache took it).
            wait_for("the failures gone", lambda: informer.failures == 0)
            assert informer.last_error is None
        finally:
            informer.stop()


class FailingWatch(BaseHTTPRequestHandler):
    """Lists answered; every watch answered 200 with an ERROR event (etcd unavailable)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if "watch=true" in self.path:
            error = {"code": 500, "reason": "InternalError", "message": "etcd unavailable"}
            body = json.dumps({"type": "ERROR", "object": error}).encode() + b"\n"
        else:
            body = json.dumps({"metadata": {"resourceVersion": "1"}, "items": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_watches_answered_that_fail_at_once_count_on() -> None:
    with serve_http(FailingWatch) as url:
        configuration = client.Configuration()
        configuration.host = url
        api = client.ApiClient(configuration)
        informer = Informer(
            list_function(api, "default"),
            on_change=lambda keys: None,
            backoff=Backoff(initial=0.01, cap=0.02),
        )
        try:
            assert informer.start(wait=10.0)
            error = wait_for(
                "three failures in a row", lambda: informer.failures >= 3 and informer.last_error
            )
        finally:
            informer.stop()
            api.close()  # type: ignore[no-untyped-call]
    # Each watch failed, none made progress: all of them counted, none forgotten.
    assert informer.failures == informer.reconnects
    assert error == "RuntimeError: watch error: InternalError: etcd unavailable"
