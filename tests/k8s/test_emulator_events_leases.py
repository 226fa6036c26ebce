"""core/v1 Events (posted and aggregated by patching count/lastTimestamp) and
coordination.k8s.io/v1 Leases (for leader election)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl


def _event(name: str, obj: str, reason: str = "Scheduled") -> Any:
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(name=name),
        involved_object=client.V1ObjectReference(
            api_version="crontask.dev/v1alpha1",
            kind="CronTask",
            name=obj,
            namespace="default",
            uid="0b5c-uid",
        ),
        reason=reason,
        message=f"{reason} {obj}",
        type="Normal",
        count=1,
        first_timestamp="2024-05-01T10:00:00Z",
        last_timestamp="2024-05-01T10:00:00Z",
        source=client.V1EventSource(component="crontask"),
    )


def test_create_list_and_aggregate_events(emulator: Emulator, k8s_api_client: Any) -> None:
    core: Any = client.CoreV1Api(k8s_api_client)
    created = core.create_namespaced_event("default", _event("backup.17a1", "backup"))
    assert created.involved_object.kind == "CronTask"
    assert created.metadata.resource_version
    core.create_namespaced_event("default", _event("report.17a2", "report", "Failed"))

    listed = core.list_namespaced_event("default", field_selector="involvedObject.name=backup")
    assert [e.metadata.name for e in listed.items] == ["backup.17a1"]
    listed = core.list_namespaced_event(
        "default", field_selector="involvedObject.kind=CronTask,reason=Failed"
    )
    assert [e.metadata.name for e in listed.items] == ["report.17a2"]

    patched = core.patch_namespaced_event(
        "backup.17a1", "default", {"count": 2, "lastTimestamp": "2024-05-01T10:05:00Z"}
    )
    assert patched.count == 2
    assert patched.reason == "Scheduled"  # the rest is kept
    assert emulator.request_log[-1].content_type == "application/strategic-merge-patch+json"
    stored = {e["metadata"]["name"]: e for e in emulator.objects("events")}
    assert stored["backup.17a1"]["count"] == 2
    assert stored["backup.17a1"]["lastTimestamp"] == "2024-05-01T10:05:00Z"


def test_events_merge_patch_and_delete(emulator: Emulator, k8s_api_client: Any) -> None:
    core: Any = client.CoreV1Api(k8s_api_client)
    core.create_namespaced_event("default", _event("e1", "x"))
    patched = core.patch_namespaced_event(
        "e1", "default", {"count": 3}, _content_type="application/merge-patch+json"
    )
    assert patched.count == 3
    gone = core.delete_namespaced_event("e1", "default")
    assert gone["kind"] == "Status"
    assert gone["status"] == "Success"
    assert emulator.objects("events") == []


def test_kubectl_get_events(emulator: Emulator, k8s_api_client: Any, kubectl: Kubectl) -> None:
    client.CoreV1Api(k8s_api_client).create_namespaced_event("default", _event("e1", "backup"))
    out = kubectl("get", "events")
    header, row = out.strip().splitlines()
    assert header.split()[:4] == ["LAST", "SEEN", "TYPE", "REASON"]
    assert row.split()[1:4] == ["Normal", "Scheduled", "crontask/backup"]


def _lease(name: str, holder: str) -> Any:
    return client.V1Lease(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=15),
    )


def test_lease_crud_and_conflicts(emulator: Emulator, k8s_api_client: Any) -> None:
    coord: Any = client.CoordinationV1Api(k8s_api_client)
    created = coord.create_namespaced_lease("default", _lease("crontask-leader", "pod-a"))
    assert created.spec.holder_identity == "pod-a"
    with pytest.raises(ApiException) as exists:
        coord.create_namespaced_lease("default", _lease("crontask-leader", "pod-b"))
    assert exists.value.status == 409

    # Two candidates read the same version; the first write wins, the second conflicts.
    first = coord.read_namespaced_lease("crontask-leader", "default")
    second = coord.read_namespaced_lease("crontask-leader", "default")
    first.spec.holder_identity = "pod-b"
    renewed = coord.replace_namespaced_lease("crontask-leader", "default", first)
    assert renewed.spec.holder_identity == "pod-b"
    second.spec.holder_identity = "pod-c"
    with pytest.raises(ApiException) as conflict:
        coord.replace_namespaced_lease("crontask-leader", "default", second)
    assert conflict.value.status == 409

    listed = coord.list_namespaced_lease("default")
    assert [lease.metadata.name for lease in listed.items] == ["crontask-leader"]
    coord.delete_namespaced_lease("crontask-leader", "default")
    with pytest.raises(ApiException) as missing:
        coord.read_namespaced_lease("crontask-leader", "default")
    assert missing.value.status == 404
