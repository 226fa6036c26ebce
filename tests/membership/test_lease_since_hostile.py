"""A Lease's ``crontask.dev/since`` is an annotation anyone may write: one that UTC cannot hold
(``9999-12-31T23:00:00-05:00`` is past year 9999 there), or that is later than the Lease's own
last renewal, is no time its holder joined, and is read as absent (the renewal time), never as
a reason to drop a live replica from the membership until its owner renews (its tasks would
move meanwhile)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from reconciler.membership.base import Announcement
from reconciler.membership.leases import MEMBER_LABEL, LeaseMembership, lease_name

A = "a:1:aaaa"
B = "b:1:bbbb"
RENEWED = "2027-01-01T12:00:00.000000Z"


def _lease(api: Any, namespace: str, since: str) -> None:
    body: Any = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lease_name(B),
            "namespace": namespace,
            "labels": {MEMBER_LABEL: "true"},
            "annotations": {"crontask.dev/since": since},
        },
        "spec": {"holderIdentity": B, "leaseDurationSeconds": 15, "renewTime": RENEWED},
    }
    client.CoordinationV1Api(api).create_namespaced_lease(namespace, body)


@pytest.mark.parametrize(
    "since",
    [
        "9999-12-31T23:00:00-05:00",  # past year 9999 in UTC
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:59:59Z",  # after its own last renewal
        "2027-01-01T12:00:01Z",
    ],
)
def test_a_since_that_is_no_time_it_joined_reads_as_its_renewal(
    k8s_api_client: Any, since: str
) -> None:
    namespace = f"members-{uuid.uuid4().hex[:8]}"
    a = LeaseMembership(k8s_api_client, namespace, monotonic=lambda: 1000.0)
    a.renew(Announcement(A))
    _lease(k8s_api_client, namespace, since)
    members = {m.id: m for m in a.renew(Announcement(A))}
    assert set(members) == {A, B}
    assert members[B].since == members[B].renewed == datetime(2027, 1, 1, 12, tzinfo=UTC)


def test_a_since_before_its_renewal_is_kept_in_utc(k8s_api_client: Any) -> None:
    namespace = f"members-{uuid.uuid4().hex[:8]}"
    a = LeaseMembership(k8s_api_client, namespace, monotonic=lambda: 1000.0)
    a.renew(Announcement(A))
    _lease(k8s_api_client, namespace, "2027-01-01T13:30:00+02:00")
    members = {m.id: m for m in a.renew(Announcement(A))}
    assert members[B].since == datetime(2027, 1, 1, 11, 30, tzinfo=UTC)
    assert members[B].since.tzinfo is UTC
