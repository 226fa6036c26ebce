"""``GET /api/v1/members`` says when its list was read and whether the answering replica is
fenced: a list from before a store outage must not pass for the current one. (A real replica
behind a stopped store: ``tests/ha/test_members_fenced.py``.)"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from reconciler.controller.view import Members
from tests.api.fakes import FakeRuntime
from tests.api.test_members import member

T = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_the_answer_says_when_the_list_was_read_and_whether_this_replica_is_fenced(
    client: TestClient, runtime: FakeRuntime
) -> None:
    runtime.replicas = Members((member("a", me=True),), live=1, listed_at=T)
    body = client.get("/api/v1/members").json()
    assert (body["listedAt"], body["fenced"]) == ("2026-11-30T12:00:00Z", False)
    runtime.replicas = Members((member("a", me=True),), live=1, listed_at=T, fenced=True)
    body = client.get("/api/v1/members").json()
    assert (body["listedAt"], body["fenced"]) == ("2026-11-30T12:00:00Z", True)


def test_the_openapi_model_has_both_fields(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["MemberListOut"]
    assert {"listedAt", "fenced"} <= set(schema["required"])
    assert schema["properties"]["fenced"]["type"] == "boolean"
