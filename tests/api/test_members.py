"""``GET /api/v1/members`` and ``crontask members``: the replicas, or a clear 404 alone."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from reconciler.controller.view import Members, MemberStatus
from tests.api.fakes import FakeRuntime

T = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def member(name: str, **fields: object) -> MemberStatus:
    values: dict[str, object] = {
        "id": f"{name}:1:{name}",
        "address": f"{name}:8080",
        "since": T,
        "renewed": T,
        "owned": 3,
        "digest": "d1",
        "revision": None,
        "draining": False,
        "me": False,
    }
    values.update(fields)
    return MemberStatus(**values)  # type: ignore[arg-type]


def test_alone_is_a_404_that_says_so(client: TestClient) -> None:
    response = client.get("/api/v1/members")
    assert response.status_code == 404
    assert "runs alone" in response.json()["detail"]
    assert response.headers["content-type"] == "application/problem+json"


def test_members_and_where_they_disagree(client: TestClient, runtime: FakeRuntime) -> None:
    runtime.replicas = Members(
        (member("a", me=True), member("b", digest="d2", draining=True, owned=0)),
        disagreeing_since=T,
        differing=(("ops/x", {"a:1:a": "h1", "b:1:b": None}),),
    )
    body = client.get("/api/v1/members").json()
    assert [(m["id"], m["me"], m["ownedTasks"], m["draining"]) for m in body["items"]] == [
        ("a:1:a", True, 3, False),
        ("b:1:b", False, 0, True),
    ]
    assert body["disagreeingSince"] == "2026-11-30T12:00:00Z"
    assert body["differingTasks"] == [{"task": "ops/x", "hashes": {"a:1:a": "A", "b:1:b": None}}]


def test_which_members_agree_is_said_without_the_spec_hashes(
    client: TestClient, runtime: FakeRuntime
) -> None:
    # A spec hash is an unkeyed digest of the spec, an http task's URL whole included: shown to
    # a viewer, it could be checked against guessed URLs offline. Letters say who agrees.
    names = [f"m{n}" for n in range(30)]
    hashes = {f"{n}:1:{n}": ("secret-a", "secret-b", None)[i % 3] for i, n in enumerate(names)}
    hashes["m29:1:m29"] = "secret-c"
    runtime.replicas = Members(
        tuple(member(n) for n in names), disagreeing_since=T, differing=(("ops/x", hashes),)
    )
    (shown,) = client.get("/api/v1/members").json()["differingTasks"]
    assert "secret" not in str(shown)
    letters = shown["hashes"]
    assert letters["m0:1:m0"] == "A"
    assert letters["m1:1:m1"] == "B"
    assert letters["m2:1:m2"] is None
    assert letters["m29:1:m29"] == "C"
    for member_id, value in hashes.items():  # the same hash, the same letter, and only then
        for other, also in hashes.items():
            same = value is not None and value == also
            assert same == (letters[member_id] is not None and letters[member_id] == letters[other])


def test_which_set_each_member_read_is_said_without_its_digest(
    client: TestClient, runtime: FakeRuntime
) -> None:
    # The digest of a member's set is an unkeyed digest of every key and spec hash: with a
    # task's other fields known (a viewer reads them), a guess of its URL can be checked.
    runtime.replicas = Members(
        (
            member("a", digest="secret-1"),
            member("b", digest="secret-2"),
            member("c", digest="secret-1"),
            member("d", digest=None),  # before its first pass
        )
    )
    body = client.get("/api/v1/members").json()
    assert "secret" not in str(body)
    assert [m["digest"] for m in body["items"]] == ["A", "B", "A", None]
