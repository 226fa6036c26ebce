"""A request's head is bounded whole, however it arrives: one of 70 KB that came in a single
read went through (uvicorn holds only a head still arriving to 16 KiB). Real HTTP through the
real ``crontask run``."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from reconciler.api.door import MAX_HEAD_BYTES
from tests.e2e.conftest import Crontask


def test_a_head_past_the_bound_is_a_431_and_one_within_is_served(
    crontask: Callable[..., Crontask],
) -> None:
    app = crontask()
    with httpx.Client(base_url=app.server) as client:
        big = {"authorization": "Bearer " + "a" * (MAX_HEAD_BYTES + 1)}
        refused = client.get("/api/v1/tasks", headers=big)
        assert refused.status_code == 431
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "https://crontask.dev/problems/headers-too-large"
        long_query = client.get("/api/v1/tasks", params={"namespace": "x" * 40_000})
        assert long_query.status_code == 431
        cookies = {"cookie": "sso=" + "c" * (MAX_HEAD_BYTES // 2)}  # another service's
        assert client.get("/healthz", headers=cookies).status_code == 200
