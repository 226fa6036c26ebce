"""Two crontask deployments whose Leases share a namespace are two memberships: each Lease is
labelled with its group (the replicas sharing a run store), and a replica lists its own group's
(and the Leases of crontask before groups, so that a rolling update's old and new replicas see
each other)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from kubernetes import client

from reconciler.membership.base import Announcement
from reconciler.membership.leases import MEMBER_LABEL, LeaseMembership, group_of, lease_name

A, B, C = Announcement("a:1:aaaa"), Announcement("b:1:bbbb"), Announcement("c:1:cccc")
STORE = "postgresql+psycopg://crontask:secret@db.example:5432/crontask"


@pytest.fixture
def namespace() -> str:
    return f"members-{uuid.uuid4().hex[:8]}"


def _labels(api: Any, namespace: str) -> dict[str, str]:
    found: Any = client.CoordinationV1Api(api).list_namespaced_lease(
        namespace, _preload_content=False
    )
    items = json.loads(found.data)["items"]
    return {i["metadata"]["name"]: i["metadata"]["labels"][MEMBER_LABEL] for i in items}


def test_two_groups_in_one_namespace_do_not_see_each_other(
    k8s_api_client: Any, namespace: str
) -> None:
    x, y = group_of(STORE), group_of(STORE.replace("/crontask", "/other"))
    a = LeaseMembership(k8s_api_client, namespace, group=x)
    b = LeaseMembership(k8s_api_client, namespace, group=y)
    c = LeaseMembership(k8s_api_client, namespace, group=x)
    for replica, me in ((a, A), (b, B), (c, C)):
        replica.renew(me)
    assert [m.id for m in a.renew(A)] == [A.id, C.id]
    assert [m.id for m in b.renew(B)] == [B.id]
    assert _labels(k8s_api_client, namespace) == {
        lease_name(A.id): x,
        lease_name(B.id): y,
        lease_name(C.id): x,
    }


def test_a_lease_of_crontask_before_groups_is_a_member_of_every_group(
    k8s_api_client: Any, namespace: str
) -> None:
    old = "old:1:oooo"
    body: Any = {
        "metadata": {"name": lease_name(old), "labels": {MEMBER_LABEL: "true"}},
        "spec": {"holderIdentity": old, "leaseDurationSeconds": 15},
    }
    client.CoordinationV1Api(k8s_api_client).create_namespaced_lease(namespace, body)
    a = LeaseMembership(k8s_api_client, namespace, group=group_of(STORE))
    b = LeaseMembership(k8s_api_client, namespace, group="team-y")
    assert [m.id for m in a.renew(A)] == [A.id, old]
    assert [m.id for m in b.renew(B)] == [B.id, old]


@pytest.mark.parametrize(
    ("same", "as_"),
    [
        (STORE.replace("secret", "rotated"), STORE),
        (STORE.replace("crontask:secret@", "crontask@"), STORE),
        (STORE.replace("+psycopg", ""), STORE),
        (f"{STORE}?sslmode=require&password=secret", f"{STORE}?sslmode=require"),
    ],
)
def test_the_replicas_of_one_run_store_are_one_group(same: str, as_: str) -> None:
    assert group_of(same) == group_of(as_)


@pytest.mark.parametrize(
    "other",
    [
        STORE.replace("/crontask", "/crontask_b"),
        STORE.replace("db.example", "db2.example"),
        STORE.replace(":5432", ":5433"),
        STORE.replace("crontask:secret@", "team_b:secret@"),  # search_path starts at $user
        f"{STORE}?options=-csearch_path%3Dteam_b",
    ],
)
def test_another_run_store_is_another_group(other: str) -> None:
    assert group_of(other) != group_of(STORE)


@pytest.mark.parametrize("url", [STORE, "postgresql://[::1", "", "@@@", "x" * 10_000])
def test_a_group_is_a_label_value(url: str) -> None:
    group = group_of(url)
    LeaseMembership(None, "default", group=group)  # checks it
    assert len(group) == 12


@pytest.mark.parametrize("group", ["", "Team", "a,b", "x" * 64, "-a", "a)"])
def test_a_group_that_is_not_a_dns_label_is_refused(group: str) -> None:
    with pytest.raises(ValueError, match="DNS-1123 label"):
        LeaseMembership(None, "default", group=group)
