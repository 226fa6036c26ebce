"""Owners, dependents and cascading deletion, from the Kubernetes docs ("Owners and
Dependents", "Garbage Collection", "Use Cascading Deletion"): Background, Foreground and
Orphan propagation, the Orphan default of batch/v1 Jobs, ``blockOwnerDeletion``, dependents
whose owners are absent. No kubelet runs here, so pods are deleted at once."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl
from tests.k8s.emulator.manifests import job, owned_by, pod
from tests.k8s.support import GROUP, PLURAL, VERSION, WatchCollector, crontask, http_call

pytestmark = pytest.mark.usefixtures("crontask_crd")

JOBS = "/apis/batch/v1/namespaces/default/jobs"
PODS = "/api/v1/namespaces/default/pods"
CRONTASKS = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"


def _ref(owner: dict[str, Any], block: bool = True) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": block,
    }


def _create(emulator: Emulator, path: str, body: dict[str, Any], *owners: dict[str, Any]) -> Any:
    if owners:
        body["metadata"]["ownerReferences"] = [_ref(o) for o in owners]
    status, _, created = http_call(emulator, "POST", path, body)
    assert status == 201, created
    return created


def _tree(emulator: Emulator) -> tuple[Any, Any, Any]:
    """A CronTask owning a Job owning a Pod, as the job action and the Job controller make."""
    task = _create(emulator, CRONTASKS, crontask("backup"))
    owned_job = _create(emulator, JOBS, job("backup-1"), task)
    owned_pod = _create(emulator, PODS, pod("backup-1-abcde"), owned_job)
    return task, owned_job, owned_pod


def _names(emulator: Emulator, resource: str) -> list[str]:
    return [o["metadata"]["name"] for o in emulator.objects(resource)]


def test_background_deletes_the_owner_then_its_dependents(emulator: Emulator) -> None:
    _tree(emulator)
    code, _, answer = http_call(
        emulator, "DELETE", f"{CRONTASKS}/backup", {"propagationPolicy": "Background"}
    )
    assert code == 200
    assert "deletionTimestamp" not in answer["metadata"]
    assert (_names(emulator, "ct"), _names(emulator, "jobs"), _names(emulator, "pods")) == (
        [],
        [],
        [],
    )


def test_a_custom_resource_deletes_its_dependents_by_default(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    _tree(emulator)
    client.CustomObjectsApi(k8s_api_client).delete_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "backup"
    )
    assert _names(emulator, "jobs") == []
    assert _names(emulator, "pods") == []


def test_orphan_keeps_the_dependents_without_the_reference(emulator: Emulator) -> None:
    task, _, _ = _tree(emulator)
    http_call(emulator, "DELETE", f"{CRONTASKS}/backup", {"propagationPolicy": "Orphan"})
    assert _names(emulator, "ct") == []
    (kept,) = emulator.objects("jobs")
    assert "ownerReferences" not in kept["metadata"]
    assert not owned_by(kept, task)
    assert _names(emulator, "pods") == ["backup-1-abcde"]  # still owned by the Job


def test_foreground_waits_for_blocking_dependents(emulator: Emulator) -> None:
    task = _create(emulator, CRONTASKS, crontask("backup"))
    body = job("backup-1")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    _create(emulator, JOBS, body, task)
    code, _, answer = http_call(
        emulator, "DELETE", f"{CRONTASKS}/backup", {"propagationPolicy": "Foreground"}
    )
    assert code == 200
    assert answer["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert answer["metadata"]["deletionTimestamp"]
    (held,) = emulator.objects("jobs")
    assert held["metadata"]["deletionTimestamp"]  # the dependent is being deleted...
    assert _names(emulator, "ct") == ["backup"]  # ...and the owner waits for it
    release = [{"op": "remove", "path": "/metadata/finalizers"}]
    patch = {"Content-Type": "application/json-patch+json"}
    http_call(emulator, "PATCH", f"{JOBS}/backup-1", release, headers=patch)
    assert _names(emulator, "jobs") == []
    assert _names(emulator, "ct") == []


def test_foreground_does_not_wait_for_non_blocking_dependents(emulator: Emulator) -> None:
    task = _create(emulator, CRONTASKS, crontask("backup"))
    body = job("backup-1")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    body["metadata"]["ownerReferences"] = [_ref(task, block=False)]
    http_call(emulator, "POST", JOBS, body)
    http_call(emulator, "DELETE", f"{CRONTASKS}/backup", {"propagationPolicy": "Foreground"})
    assert _names(emulator, "ct") == []
    (held,) = emulator.objects("jobs")
    assert held["metadata"]["deletionTimestamp"]  # deleted, held by its own finalizer


def test_a_job_orphans_its_pods_by_default(emulator: Emulator, k8s_api_client: Any) -> None:
    """batch/v1 keeps the old default: a DELETE without a policy orphans the pods."""
    owner = _create(emulator, JOBS, job("j"))
    _create(emulator, PODS, pod("j-abcde"), owner)
    code, _, answer = http_call(emulator, "DELETE", f"{JOBS}/j")
    assert code == 200
    assert answer["kind"] == "Job"  # deletion waited for the orphan finalizer
    assert answer["metadata"]["finalizers"] == ["orphan"]
    assert _names(emulator, "jobs") == []
    (orphan,) = emulator.objects("pods")
    assert "ownerReferences" not in orphan["metadata"]


def test_a_job_deleted_in_background_takes_its_pods(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    owner = _create(emulator, JOBS, job("j"))
    _create(emulator, PODS, pod("j-abcde"), owner)
    client.BatchV1Api(k8s_api_client).delete_namespaced_job(
        "j", "default", propagation_policy="Background"
    )
    assert (_names(emulator, "jobs"), _names(emulator, "pods")) == ([], [])


def test_the_policy_may_come_as_a_query_parameter(emulator: Emulator) -> None:
    owner = _create(emulator, JOBS, job("j"))
    _create(emulator, PODS, pod("j-abcde"), owner)
    http_call(emulator, "DELETE", f"{JOBS}/j?propagationPolicy=Foreground")
    assert (_names(emulator, "jobs"), _names(emulator, "pods")) == ([], [])


def test_an_unknown_policy_is_invalid(emulator: Emulator) -> None:
    _create(emulator, JOBS, job("j"))
    code, _, answer = http_call(emulator, "DELETE", f"{JOBS}/j", {"propagationPolicy": "Later"})
    assert (code, answer["reason"]) == (422, "Invalid")
    assert _names(emulator, "jobs") == ["j"]


def test_kubectl_delete_job_cascades(emulator: Emulator, kubectl: Kubectl) -> None:
    owner = _create(emulator, JOBS, job("j"))
    _create(emulator, PODS, pod("j-abcde"), owner)
    assert kubectl("delete", "job", "j").strip() == 'job.batch "j" deleted'
    assert _names(emulator, "pods") == []
    owner = _create(emulator, JOBS, job("k"))
    _create(emulator, PODS, pod("k-abcde"), owner)
    kubectl("delete", "job", "k", "--cascade=orphan")
    assert _names(emulator, "pods") == ["k-abcde"]


def test_a_dependent_whose_owner_is_absent_is_collected(emulator: Emulator) -> None:
    ghost = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "gone", "uid": "0000"}}
    code, _, _ = http_call(emulator, "POST", PODS, {**pod("p"), "metadata": {
        "name": "p", "ownerReferences": [_ref(ghost)]}})  # fmt: skip
    assert code == 201
    assert _names(emulator, "pods") == []


def test_a_dependent_with_another_owner_only_loses_the_reference(emulator: Emulator) -> None:
    first = _create(emulator, JOBS, job("first"))
    second = _create(emulator, JOBS, job("second"))
    body = pod("shared")
    body["metadata"]["ownerReferences"] = [_ref(first), {**_ref(second), "controller": False}]
    http_call(emulator, "POST", PODS, body)
    http_call(emulator, "DELETE", f"{JOBS}/first", {"propagationPolicy": "Background"})
    (kept,) = emulator.objects("pods")
    assert [r["name"] for r in kept["metadata"]["ownerReferences"]] == ["second"]


def test_an_owner_in_another_namespace_counts_as_absent(emulator: Emulator) -> None:
    elsewhere = _create(
        emulator, "/apis/batch/v1/namespaces/team-b/jobs", job("j", namespace="team-b")
    )
    body = pod("p")
    body["metadata"]["ownerReferences"] = [_ref(elsewhere)]
    http_call(emulator, "POST", PODS, body)
    assert _names(emulator, "pods") == []


def test_deleting_the_crd_collects_what_its_resources_owned(emulator: Emulator) -> None:
    _tree(emulator)
    http_call(
        emulator,
        "DELETE",
        f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{PLURAL}.{GROUP}",
    )
    assert (_names(emulator, "jobs"), _names(emulator, "pods")) == ([], [])


def test_watchers_see_the_orphan_finalizer_then_the_deletion(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    batch = client.BatchV1Api(k8s_api_client)
    owner = _create(emulator, JOBS, job("j"))
    watch = WatchCollector(
        batch.list_namespaced_job, "default", resource_version=owner["metadata"]["resourceVersion"]
    ).start()
    try:
        emulator.wait_for_watches(1, "jobs")
        http_call(emulator, "DELETE", f"{JOBS}/j")
        modified, deleted = watch.take(2)
        assert modified["type"] == "MODIFIED"
        assert modified["object"].metadata.finalizers == ["orphan"]
        assert deleted["type"] == "DELETED"
    finally:
        watch.stop()
