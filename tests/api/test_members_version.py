"""Which crontask version each replica runs, in ``GET /api/v1/members``, so that the replicas of
a rolling update can be told apart; one of a release that does not say is ``null``."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from reconciler.controller.view import Members, MemberStatus
from tests.api.fakes import FakeRuntime

T = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


def member(name: str, version: str | None) -> MemberStatus:
    return MemberStatus(
        id=f"{name}:1:{name}",
        address=f"{name}:8080",
        since=T,
        renewed=T,
        owned=1,
        digest="d1",
        revision=None,
        draining=False,
        me=name == "a",
        version=version,
    )


def test_each_member_says_its_version_or_null(client: TestClient, runtime: FakeRuntime) -> None:
    runtime.replicas = Members((member("a", "0.3.0"), member("b", None)))
    body = client.get("/api/v1/members").json()
    assert [(m["id"], m["version"]) for m in body["items"]] == [
        ("a:1:a", "0.3.0"),
        ("b:1:b", None),
    ]


def test_the_version_is_a_nullable_string_in_the_openapi_document(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["MemberOut"]
    assert "version" not in schema.get("required", [])
    assert {t.get("type") for t in schema["properties"]["version"]["anyOf"]} == {"string", "null"}
