"""A replica deletes a Lease only in the state it judged: its own at shutdown as it last wrote
it, an expired one as it listed it. A Lease written since (taken over under the same name, or
renewed after all) is someone else's, and is left alone."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from kubernetes import client

from reconciler.membership.base import Announcement
from reconciler.membership.leases import MEMBER_LABEL, LeaseMembership, lease_name

A = "a:1:aaaa"
B = "b:1:bbbb"


@pytest.fixture
def namespace() -> str:
    return f"members-{uuid.uuid4().hex[:8]}"


def _holder(api: Any, namespace: str, instance: str) -> str:
    lease = client.CoordinationV1Api(api).read_namespaced_lease(lease_name(instance), namespace)
    assert lease.spec is not None
    return str(lease.spec.holder_identity)


def test_leaving_keeps_our_lease_if_it_was_written_since(
    k8s_api_client: Any, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    a = LeaseMembership(k8s_api_client, namespace)
    a.renew(Announcement(A))
    # Expired and forgotten by another replica, then created again under the same name.
    coord = client.CoordinationV1Api(k8s_api_client)
    coord.delete_namespaced_lease(lease_name(A), namespace)
    body: Any = {
        "metadata": {"name": lease_name(A), "labels": {MEMBER_LABEL: "true"}},
        "spec": {"holderIdentity": "someone else", "leaseDurationSeconds": 15},
    }
    coord.create_namespaced_lease(namespace, body)
    with caplog.at_level(logging.INFO, logger="crontask.membership"):
        a.leave(Announcement(A))
    assert _holder(k8s_api_client, namespace, A) == "someone else"
    assert any(r.levelno == logging.INFO for r in caplog.records)
    a.leave(Announcement(A))  # nothing of ours is left: no error
    assert _holder(k8s_api_client, namespace, A) == "someone else"


def test_leaving_deletes_our_lease_as_we_last_wrote_it(k8s_api_client: Any, namespace: str) -> None:
    a = LeaseMembership(k8s_api_client, namespace)
    a.renew(Announcement(A))
    a.renew(Announcement(A, owned=3))
    a.leave(Announcement(A))
    leases = client.CoordinationV1Api(k8s_api_client).list_namespaced_lease(namespace)
    assert leases.items == []


def test_an_expired_lease_renewed_after_it_was_listed_is_not_deleted(
    k8s_api_client: Any, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    a = LeaseMembership(k8s_api_client, namespace, monotonic=lambda: now[0])
    b = LeaseMembership(k8s_api_client, namespace)
    b.renew(Announcement(B))
    assert [m.id for m in a.renew(Announcement(A))] == [A, B]
    now[0] += 15 * 10  # b's Lease is now to be forgotten...
    listed = a._leases.list_namespaced_lease

    def b_renews_after_the_list(*args: Any, **kwargs: Any) -> Any:
        found = listed(*args, **kwargs)
        b.renew(Announcement(B))  # ...but b comes back between the list and the delete
        return found

    monkeypatch.setattr(a._leases, "list_namespaced_lease", b_renews_after_the_list)
    assert [m.id for m in a.renew(Announcement(A))] == [A]
    monkeypatch.undo()
    assert _holder(k8s_api_client, namespace, B) == B
    assert [m.id for m in a.renew(Announcement(A))] == [A, B]  # seen renewed: live again
