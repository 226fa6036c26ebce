"""A list page holding an item that is no object (or whose metadata is none), and a watch event
whose object or metadata is malformed, are skipped and said once: not a failed list or watch,
which every re-list and reconnect would fail again, for good.

Against a real HTTP server on localhost that answers the LIST and the WATCH with such bodies."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from kubernetes import client

from reconciler.sources.kubernetes import list_function
from reconciler.sources.kubernetes_watch import Backoff, Informer
from tests.helpers import serve_http, wait_for


def crontask(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": rv}}


PAGE = {
    "metadata": {"resourceVersion": "3"},
    "items": [42, "text", None, ["a"], {"metadata": "a string"}, crontask("a", "2")],
}
EVENTS = [
    {"type": "ADDED", "object": {"metadata": ["not", "an", "object"]}},
    {"type": "MODIFIED", "object": "text"},
    {"type": "ADDED"},
    ["not", "an", "event"],
    {"type": "BOOKMARK", "object": {"metadata": 7}},
    {"type": "ADDED", "object": crontask("b", "5")},
]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if "watch=true" in self.path:
            body = b"".join(json.dumps(e).encode() + b"\n" for e in EVENTS)
        else:
            body = json.dumps(PAGE).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def informer() -> Iterator[Informer]:
    with serve_http(Handler) as url:
        configuration = client.Configuration()
        configuration.host = url
        informer = Informer(
            list_function(client.ApiClient(configuration), "default"),
            on_change=lambda keys: None,
            backoff=Backoff(initial=0.01, cap=0.02),
        )
        yield informer
        informer.stop()


def test_malformed_items_and_events_are_skipped_not_failed(
    informer: Informer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="crontask.sources"):
        assert informer.start(5.0)
        wait_for("the watch's good event", lambda: "default/b" in informer.snapshot(), 5.0)
        wait_for("a second watch", lambda: informer.malformed >= 2 * 5 + 5, 5.0)
    assert informer.lists == 1  # the list worked, and was not retried
    assert set(informer.snapshot()) == {"default/a", "default/b"}
    assert informer.resource_version == "5"
    assert informer.last_error is None
    skipped = [
        (getattr(r, "fields", {}).get("in"), getattr(r, "fields", {}).get("shape"))
        for r in caplog.records
        if r.name == "crontask.sources"
    ]
    # Said once for lists, once for watches (each watch delivers the same again), by shape.
    assert skipped == [("list", "int"), ("watch", "dict whose metadata is list")]
