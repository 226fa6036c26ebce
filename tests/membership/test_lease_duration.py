"""A Lease says its duration in whole seconds: a fractional --lease-duration is rounded up, so
that no replica judges another expired before that one has fenced itself (at its renew
deadline, which is below its lease duration). Every replica judges a Lease by the duration it
states, so by the rounded one."""

from __future__ import annotations

import uuid
from typing import Any

from kubernetes import client

from reconciler.membership.base import Announcement
from reconciler.membership.leases import LeaseMembership, lease_name

# --renew-interval 1s --renew-deadline 2.2s --lease-duration 2.4s: the CLI accepts it.
LEASE = 2.4
DEADLINE = 2.2
A = Announcement("a:1:aaaa", lease_seconds=LEASE)
B = Announcement("b:1:bbbb", lease_seconds=LEASE)


def test_a_fractional_lease_duration_is_rounded_up(k8s_api_client: Any) -> None:
    namespace = f"members-{uuid.uuid4().hex[:8]}"
    now = [1000.0]
    a = LeaseMembership(k8s_api_client, namespace, monotonic=lambda: now[0])
    b = LeaseMembership(k8s_api_client, namespace, monotonic=lambda: now[0])
    a.renew(A)  # a's renewal began, and was written, at 1000
    assert [m.id for m in b.renew(B)] == [A.id, B.id]
    now[0] += DEADLINE - 0.1  # a cannot renew: it still starts runs until its deadline
    assert [m.id for m in b.renew(B)] == [A.id, B.id]
    now[0] += 0.4  # a fenced itself at its deadline; its Lease states 3 s
    assert [m.id for m in b.renew(B)] == [A.id, B.id]
    now[0] += 0.5  # b judges it gone at the lease its Lease states
    assert [m.id for m in b.renew(B)] == [B.id]
    written = client.CoordinationV1Api(k8s_api_client).read_namespaced_lease(
        lease_name(A.id), namespace
    )
    assert written.spec is not None
    assert written.spec.lease_duration_seconds == 3
