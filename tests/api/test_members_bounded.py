"""``GET /api/v1/members`` lists a bounded number of members, the one that answers always among
them, and says how many are live: rows anyone who can write the members table adds would
otherwise make it as large as they like (20 000 rows: an answer of 49 MB). ``crontask members``
says when the list is not whole."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from reconciler.api.routes_members import MEMBERS_SHOWN
from reconciler.controller.view import Members, MemberStatus
from tests.api.fakes import FakeRuntime
from tests.api.test_remote import cli, operator

__all__ = ["operator"]  # the CLI's token (the real server is conftest's)

T = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MANY = 250
ME = "zz:1:me"  # sorts after every other: not among the first by id


def crowd() -> Members:
    items = [
        MemberStatus(
            id=f"{n:04d}" + "x" * 200,
            address="a" * 255,
            since=T,
            renewed=T,
            owned=0,
            digest=f"d{n % 2}",
            revision=None,
            draining=False,
            me=False,
        )
        for n in range(MANY - 1)
    ]
    items.append(MemberStatus(ME, None, T, T, 3, "d0", None, False, True))
    hashes: dict[str, str | None] = {m.id: m.digest for m in items}
    return Members(
        tuple(items), disagreeing_since=T, differing=tuple((f"ops/t{k}", hashes) for k in range(20))
    )


def test_a_crowd_is_listed_in_part_with_the_answering_one(
    client: TestClient, runtime: FakeRuntime
) -> None:
    runtime.replicas = crowd()
    response = client.get("/api/v1/members")
    body = response.json()
    listed = [m["id"] for m in body["items"]]
    assert body["total"] == MANY
    assert len(listed) == MEMBERS_SHOWN
    assert listed == sorted(listed)
    assert listed[-1] == ME
    assert body["items"][-1]["me"]
    assert len(body["differingTasks"]) == 20
    for task in body["differingTasks"]:  # each member's letter, only for those listed
        assert list(task["hashes"]) == listed
    # 100 members, each in 20 tasks' letters: far from the 2.5 MB of all 250 of them.
    print("bytes:", len(response.content))
    assert len(response.content) < 800 * 1024


def test_a_few_are_listed_whole(client: TestClient, runtime: FakeRuntime) -> None:
    runtime.replicas = Members((MemberStatus(ME, None, T, T, 3, "d0", None, False, True),))
    body = client.get("/api/v1/members").json()
    assert body["total"] == 1
    assert [m["id"] for m in body["items"]] == [ME]


@pytest.mark.usefixtures("operator")
def test_the_cli_says_the_list_is_not_whole(
    server: str, runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime.replicas = crowd()
    assert cli("members", "--server", server) == 0
    out = capsys.readouterr().out
    assert f"{MEMBERS_SHOWN} of {MANY} live members listed" in out
    assert f"{ME} (this one)" in out
