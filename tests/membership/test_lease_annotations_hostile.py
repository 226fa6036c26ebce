"""A replica's Lease annotated by someone else (``kubectl annotate lease ...
crontask.dev/draining=true``): its next renewal removes what it does not publish, and its own
record reads as it announced it, so one annotation cannot take a live replica's tasks away
(every replica judged draining once owned no task at all, until restarted)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

import httpx
import pytest
from kubernetes import client

from reconciler.membership.base import Announcement
from reconciler.membership.leases import LeaseMembership, lease_name

A = Announcement("a:1:aaaa", address="10.0.0.1:8080", revision="abc123")
B = Announcement("b:1:bbbb")
DRAINING = "crontask.dev/draining"


@pytest.fixture
def namespace() -> str:
    return f"members-{uuid.uuid4().hex[:8]}"


def _annotate(api: Any, namespace: str, who: Announcement, notes: dict[str, str]) -> None:
    """What ``kubectl annotate lease`` sends: a merge patch of the annotations."""
    httpx.patch(
        f"{api.configuration.host}/apis/coordination.k8s.io/v1/namespaces/{namespace}"
        f"/leases/{lease_name(who.id)}",
        content=json.dumps({"metadata": {"annotations": notes}}),
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=5,
    ).raise_for_status()


def _notes(api: Any, namespace: str, who: Announcement) -> dict[str, str]:
    found: Any = client.CoordinationV1Api(api).read_namespaced_lease(
        lease_name(who.id), namespace, _preload_content=False
    )
    notes = json.loads(found.data)["metadata"].get("annotations") or {}
    assert isinstance(notes, dict)
    return notes


def _draining(members: list[Any]) -> dict[str, bool]:
    return {m.id: m.draining for m in members}


def test_a_draining_flag_someone_else_wrote_is_removed_at_the_next_renewal(
    k8s_api_client: Any, namespace: str
) -> None:
    a = LeaseMembership(k8s_api_client, namespace)
    b = LeaseMembership(k8s_api_client, namespace)
    a.renew(A)
    b.renew(B)
    for who in (A, B):
        _annotate(k8s_api_client, namespace, who, {DRAINING: "true"})
    # Until a replica renews, the others see its Lease as it was annotated ...
    assert _draining(b.renew(B)) == {A.id: True, B.id: False}
    assert DRAINING not in _notes(k8s_api_client, namespace, B)
    # ... and its renewal takes the flag off again: every replica sees both live, not draining.
    assert _draining(a.renew(A)) == {A.id: False, B.id: False}
    assert DRAINING not in _notes(k8s_api_client, namespace, A)
    assert _draining(b.renew(B)) == {A.id: False, B.id: False}


def test_an_annotation_it_no_longer_publishes_is_removed(
    k8s_api_client: Any, namespace: str
) -> None:
    a = LeaseMembership(k8s_api_client, namespace)
    a.renew(dataclasses.replace(A, draining=True))
    assert _notes(k8s_api_client, namespace, A)[DRAINING] == "true"
    # Drained, then not (a process that began to stop, in a test): neither the flag nor an
    # address or a revision it no longer has stays behind.
    a.renew(dataclasses.replace(A, address=None, revision=None))
    notes = _notes(k8s_api_client, namespace, A)
    assert {DRAINING, "crontask.dev/address", "crontask.dev/revision"} & set(notes) == set()
    assert notes["crontask.dev/owned"] == "0"


def test_our_own_record_reads_as_we_announced_it(
    k8s_api_client: Any, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = LeaseMembership(k8s_api_client, namespace)
    b = LeaseMembership(k8s_api_client, namespace)
    a.renew(A)
    listed = a._leases.list_namespaced_lease

    def annotated_meanwhile(*args: Any, **kwargs: Any) -> Any:
        # Between our patch and our list: the list shows our Lease as someone annotated it.
        _annotate(k8s_api_client, namespace, A, {DRAINING: "true", "crontask.dev/digest": "x"})
        return listed(*args, **kwargs)

    monkeypatch.setattr(a._leases, "list_namespaced_lease", annotated_meanwhile)
    (ours,) = a.renew(A)
    assert (ours.draining, ours.digest, ours.address) == (False, None, A.address)
    # The others see what the Lease says until our next renewal, which takes it off.
    assert _draining(b.renew(B)) == {A.id: True, B.id: False}
    monkeypatch.setattr(a._leases, "list_namespaced_lease", listed)
    a.renew(A)
    assert {DRAINING, "crontask.dev/digest"} & set(_notes(k8s_api_client, namespace, A)) == set()
