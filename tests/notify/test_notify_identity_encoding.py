"""A notification asks for its answer unencoded (``Accept-Encoding: identity``): an encoded body
is never read (never decompressed), so a receiver that compresses its answer whenever gzip is
offered, as most servers do, had the connection closed after every message (a TCP and TLS
handshake each). And a ``urlFile`` that is not UTF-8 text is said in the project's words, not
Python's (which named no file and placed a byte inside the secret). Real receivers on
127.0.0.1."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.runs import RunStatus
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_config import NotificationConfigError, load
from tests.notify.test_hostile_receivers import EVERY_FAILURE, counted
from tests.notify.test_notifier import T0, config, counts, finished, running

ANSWER = b'{"ok": true, "message": "accepted, thank you"}'


class Offered:
    """What each request offered (``Accept-Encoding``), and the client port it came from: one
    per connection."""

    def __init__(self) -> None:
        self.requests: list[tuple[str | None, int]] = []
        self.lock = threading.Lock()


@contextmanager
def compressing() -> Iterator[tuple[str, Offered]]:
    """A receiver over HTTP/1.1 that answers 200 with a short JSON body, gzipped if the request
    offers gzip (as a server with compression on does), plain otherwise."""
    offered = Offered()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            accepts = self.headers.get("Accept-Encoding")
            with offered.lock:
                offered.requests.append((accepts, self.client_address[1]))
            body = ANSWER
            self.send_response(200)
            if "gzip" in (accepts or ""):
                body = gzip.compress(body)
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", offered
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_messages_to_a_receiver_that_compresses_when_asked_share_one_connection(
    tmp_path: Path,
) -> None:
    metrics = Metrics()
    with compressing() as (url, offered):
        notifier = Notifier(
            config(tmp_path, url, route=EVERY_FAILURE), metrics=metrics, backoff=0.01
        )

        async def body() -> None:
            for second in range(3):
                notifier.on_run(finished(RunStatus.FAILED, T0 + timedelta(seconds=second)))
                await counted(metrics, "sent", second + 1)

        running(notifier, body)
    assert counts(metrics) == {"dropped": 0, "failed": 0, "sent": 3}
    ports = [port for _, port in offered.requests]
    assert len(set(ports)) == 1, offered.requests
    assert [accepts for accepts, _ in offered.requests] == ["identity"] * 3


@pytest.mark.parametrize("content", [b"https://hooks.example/T0/\xff\xfeSECRET\n", b"\x80"])
def test_a_url_file_that_is_not_utf8_is_said_in_words_that_name_it(
    tmp_path: Path, content: bytes
) -> None:
    """Refused where the file is named (crontask validate, start), and at each delivery
    (``url_of``: the file may have been rotated into it) with the same words."""
    (tmp_path / "url").write_text("https://hooks.example/T0/ok\n")
    path = tmp_path / "n.yaml"
    path.write_text(
        "receivers:\n  - {name: hook, type: generic, urlFile: url}\n"
        "routes:\n  - {receiver: hook, events: [failed]}\n"
    )
    loaded = load(path)
    (tmp_path / "url").write_bytes(content)
    said = f"{tmp_path / 'url'}: not UTF-8 text: the file must hold the URL itself"

    with pytest.raises(ValueError, match=r"^urlFile: ") as caught:
        loaded.url_of(loaded.config.receivers[0])
    assert str(caught.value) == f"urlFile: {said}"
    with pytest.raises(NotificationConfigError) as refused:
        load(path)
    assert str(refused.value) == f"{path}:2:42: receivers[0].urlFile: {said}"
