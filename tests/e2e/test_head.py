"""HEAD is answered wherever GET is (RFC 9110, 9.3.2), by the real ``crontask run``: health
checks, uptime monitors and ``curl -I`` ask that way, and every route answered 405."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.e2e.conftest import Crontask


def test_head_is_get_without_its_body(crontask: Callable[..., Crontask]) -> None:
    app = crontask()
    with httpx.Client(base_url=app.server) as client:
        for path in ("/healthz", "/readyz", "/metrics", "/", "/api/v1/tasks"):
            got, head = client.get(path), client.head(path)
            assert head.status_code == got.status_code == 200, path
            assert head.content == b"", path
            assert head.headers["content-type"] == got.headers["content-type"], path
            if "content-encoding" not in got.headers:  # httpx gives the gzipped body decoded
                assert int(head.headers["content-length"]) == len(got.content), path
        missing = client.head("/api/v1/tasks/default/nope")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.content == b""
        refused = client.post("/healthz")
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET, HEAD"
