"""A git remote on 127.0.0.1 that can hang mid-fetch: git's smart HTTP protocol, served by
the real ``git http-backend`` (CGI) behind a small threaded HTTP server.

While :attr:`StallingRemote.stalled` is set, a request that asks for objects (protocol v2
``command=fetch``, or a v0 ``want`` line) gets its response headers and the first bytes of
the real answer, then nothing more: the connection stays open, silent, until the remote is
released or closed. Reference discovery (``info/refs``, ``ls-refs``) keeps answering, so the
client has started the fetch when it stalls. :attr:`StallingRemote.stalls` counts the
requests held this way.
"""

from __future__ import annotations

import gzip
import http.server
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

_HEAD_BYTES = 64  # of the pack response sent before the stall


class StallingRemote:
    def __init__(self, bare: Path) -> None:
        self.bare = bare
        self.stalled = threading.Event()
        self.stalls = 0
        self._release = threading.Event()
        self._lock = threading.Lock()
        remote = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection; the body ends at close

            def do_GET(self) -> None:
                remote._serve(self, b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                remote._serve(self, self.rfile.read(length))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,))
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/{self.bare.name}"

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _serve(self, request: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        path, _, query = request.path.partition("?")
        prefix = f"/{self.bare.name}"
        if not path.startswith(prefix + "/"):
            request.send_error(404)
            return
        encoding = request.headers.get("Content-Encoding", "")
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "GIT_PROJECT_ROOT": str(self.bare.parent),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "REQUEST_METHOD": request.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": encoding,
            "GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
            "REMOTE_ADDR": "127.0.0.1",
        }
        done = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        head, _, answer = done.stdout.partition(b"\r\n\r\n")
        headers = [line.split(b":", 1) for line in head.split(b"\r\n") if b":" in line]
        status = next((int(v.split()[0]) for k, v in headers if k.lower() == b"status"), 200)
        request.send_response(status)
        for key, value in headers:
            if key.lower() != b"status":
                request.send_header(key.decode(), value.strip().decode())
        request.end_headers()
        plain = gzip.decompress(body) if encoding == "gzip" else body
        if self.stalled.is_set() and (b"command=fetch" in plain or b"want " in plain):
            with self._lock:
                self.stalls += 1
            request.wfile.write(answer[:_HEAD_BYTES])
            request.wfile.flush()
            self._release.wait()  # mid-fetch: the client waits for the rest
            return
        request.wfile.write(answer)
