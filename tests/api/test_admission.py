"""Admission: a few requests inside the app at once, the rest waiting (bounded in number and
time), probes never queued; and through the real app, a refusal is a 503 problem."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest
from fastapi import HTTPException

from reconciler.api.admission import Admission
from reconciler.api.door import busy
from tests.api.conftest import AppFactory, TestClient


class SlowApp:
    """An ASGI app whose requests stay inside until released; counts who got in."""

    def __init__(self) -> None:
        self.inside = 0
        self.most_inside = 0
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        self.entered.set()
        try:
            if scope["path"] != "/healthz":
                await self.release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        finally:
            self.inside -= 1


async def call(app: Any, path: str) -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "path": path, "method": "GET", "headers": []}, receive, send)
    return int(sent[0]["status"])


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_few_inside_the_rest_wait_and_the_overflow_is_refused() -> None:
    async def scenario() -> None:
        inner = SlowApp()
        admission = Admission(inner, busy, max_active=2, max_waiting=3, wait_seconds=30)
        calls = [asyncio.create_task(call(admission, f"/api/v1/tasks?{i}")) for i in range(5)]
        await settle()
        assert (inner.inside, admission.waiting) == (2, 3)
        assert await call(admission, "/api/v1/runs") == 503  # the sixth: no room to wait
        assert await call(admission, "/healthz") == 200  # probes pass a full house
        inner.release.set()
        assert await asyncio.gather(*calls) == [200] * 5
        assert inner.most_inside == 2 + 1  # the probe came in beside the two
        assert (admission.active, admission.waiting) == (0, 0)

    asyncio.run(scenario())


def test_a_wait_has_a_deadline() -> None:
    async def scenario() -> None:
        inner = SlowApp()
        admission = Admission(inner, busy, max_active=1, max_waiting=10, wait_seconds=0.05)
        first = asyncio.create_task(call(admission, "/api/v1/tasks"))
        await inner.entered.wait()
        assert await call(admission, "/api/v1/tasks") == 503
        inner.release.set()
        assert await first == 200
        assert admission.waiting == 0

    asyncio.run(scenario())


def test_the_refusal_is_a_problem_with_retry_after() -> None:
    inner = SlowApp()
    admission = Admission(inner, busy, max_active=1, max_waiting=0)
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def scenario() -> int:
        first = asyncio.create_task(call(admission, "/api/v1/tasks"))
        await inner.entered.wait()
        scope = {"type": "http", "path": "/api/v1/tasks", "method": "GET", "headers": []}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        await admission(scope, receive, send)
        inner.release.set()
        return await first

    assert asyncio.run(scenario()) == 200
    assert sent[0]["status"] == 503
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"retry-after"] == b"1"
    assert b"busy" in sent[1]["body"]


def test_the_app_serves_through_admission(make_app: AppFactory) -> None:
    with TestClient(make_app()) as client:
        for _ in range(3):
            assert client.get("/api/v1/tasks").status_code == 200


def test_a_body_has_one_deadline_and_a_disconnect_none() -> None:
    """The deadline covers the body only: once it is in, waiting for a disconnect (as a
    streamed answer does) is not cut short."""
    chunks = [{"type": "http.request", "body": b"a", "more_body": True}]
    more = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if chunks:
            return chunks.pop(0)
        await more.wait()  # the rest of the body, or the disconnect, comes late
        return {"type": "http.disconnect"}

    async def reader(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await receive()

    async def scenario() -> None:
        admission = Admission(reader, busy, body_seconds=0.05)
        scope = {"type": "http", "path": "/login", "method": "POST", "headers": []}
        with pytest.raises(HTTPException) as late:
            await admission(scope, receive, _ignore)
        assert (late.value.status_code, late.value.headers) == (408, {"Connection": "close"})
        assert admission.active == 0  # its place is free again

        chunks.append({"type": "http.request", "body": b"a", "more_body": False})
        asyncio.get_running_loop().call_later(0.1, more.set)  # after the body's deadline
        await Admission(reader, busy, body_seconds=0.05)(scope, receive, _ignore)

    asyncio.run(scenario())


async def _ignore(message: Any) -> None:
    pass


def test_routes_anyone_may_call_with_a_body_hold_only_their_own_few_places() -> None:
    # Strangers trickling bodies to /login or to the git webhook are not known until their
    # body is read: however many they are, they hold at most MAX_PUBLIC_BODIES places inside
    # for /login and MAX_HOOK_BODIES for the webhook, each route its own.
    async def scenario() -> None:
        inner = SlowApp()
        admission = Admission(
            inner, busy, max_active=6, max_public=2, max_hooks=2, hook_kept=0, wait_seconds=30
        )
        strangers = [
            asyncio.create_task(call(admission, path))
            for path in ["/login", "/api/v1/hooks/git"] * 3
        ]
        await settle()
        # The webhook's waiters are its own (``hook_places``), not among the others'.
        assert (inner.inside, admission.waiting, admission.hooks.waiting()) == (4, 1, 1)
        callers = [asyncio.create_task(call(admission, "/api/v1/tasks")) for _ in range(2)]
        await settle()
        assert inner.inside == 6  # the callers got the places the strangers could not take
        inner.release.set()
        assert await asyncio.gather(*strangers, *callers) == [200] * 8
        assert (admission.active, admission.waiting) == (0, 0)

    asyncio.run(scenario())
