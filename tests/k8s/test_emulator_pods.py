"""core/v1 Pods as the API server serves them (no kubelet running): defaults, validation,
the spec fields an update may change, graceful deletion of a scheduled pod, the ``pods/log``
errors of a pod that no kubelet runs, and the pod printer behind ``kubectl get pods``. From
the Kubernetes docs ("Pod Lifecycle": phases, container states, termination of Pods) and the
core/v1 API reference."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl
from tests.k8s.emulator.manifests import pod
from tests.k8s.support import TABLE_ACCEPT, error_body, http_call

PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture
def core(k8s_api_client: Any) -> Any:
    return client.CoreV1Api(k8s_api_client)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_create_fills_defaults_and_a_pending_status(emulator: Emulator) -> None:
    body = pod("p")
    body["spec"]["containers"][0]["image"] = "busybox"
    status, _, created = http_call(emulator, "POST", PODS, body)
    assert status == 201
    spec = created["spec"]
    assert (spec["restartPolicy"], spec["terminationGracePeriodSeconds"]) == ("Always", 30)
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["containers"][0]["imagePullPolicy"] == "Always"  # no tag means :latest
    assert "nodeName" not in spec  # nothing schedules it without run_jobs
    assert created["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_qos_class_follows_requests_and_limits(emulator: Emulator) -> None:
    body = pod("g")
    same = {"cpu": "100m", "memory": "64Mi"}
    body["spec"]["containers"][0]["resources"] = {"limits": same, "requests": same}
    assert http_call(emulator, "POST", PODS, body)[2]["status"]["qosClass"] == "Guaranteed"
    body = pod("b")
    body["spec"]["containers"][0]["resources"] = {"requests": {"memory": "64Mi"}}
    assert http_call(emulator, "POST", PODS, body)[2]["status"]["qosClass"] == "Burstable"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda c: c.pop("image"), "spec.containers[0].image", "Required value"),
        (lambda c: c.pop("name"), "spec.containers[0].name", "Required value"),
        (lambda c: c.update(env=[{"value": "x"}]), "spec.containers[0].env[0].name",
         "Required value"),
    ],
)  # fmt: skip
def test_invalid_containers_are_422(
    emulator: Emulator, change: Any, field: str, message: str
) -> None:
    body = pod("bad")
    change(body["spec"]["containers"][0])
    code, _, status = http_call(emulator, "POST", PODS, body)
    assert (code, status["reason"]) == (422, "Invalid")
    assert status["message"] == f'Pod "bad" is invalid: {field}: {message}'
    assert status["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": message, "field": field}
    ]


def test_unknown_restart_policy_is_not_supported(emulator: Emulator) -> None:
    _, _, status = http_call(emulator, "POST", PODS, pod("bad", restartPolicy="Sometimes"))
    (cause,) = status["details"]["causes"]
    assert cause["reason"] == "FieldValueNotSupported"
    assert cause["message"] == (
        'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'
    )


def test_an_update_may_change_images_but_not_commands(core: Any) -> None:
    core.create_namespaced_pod("default", pod("p", "echo one"))
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_pod(
            "p",
            "default",
            [{"op": "replace", "path": "/spec/containers/0/command/2", "value": "x"}],
        )
    (cause,) = error_body(err.value)["details"]["causes"]
    assert (cause["field"], cause["reason"]) == ("spec", "FieldValueForbidden")
    assert cause["message"].startswith("Forbidden: pod updates may not change fields other than")
    patched = core.patch_namespaced_pod(
        "p", "default", [{"op": "replace", "path": "/spec/containers/0/image", "value": "alpine"}]
    )
    assert patched.spec.containers[0].image == "alpine"


def test_status_writes_go_through_the_status_subresource(core: Any) -> None:
    core.create_namespaced_pod("default", pod("p"))
    kept = core.patch_namespaced_pod("p", "default", {"status": {"phase": "Running"}})
    assert kept.status.phase == "Pending"
    written = core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Running"}})
    assert written.status.phase == "Running"


def test_deleting_an_unscheduled_pod_is_immediate(emulator: Emulator) -> None:
    http_call(emulator, "POST", PODS, pod("p"))
    code, _, answer = http_call(emulator, "DELETE", f"{PODS}/p")
    assert (code, answer["kind"]) == (200, "Pod")  # the pod registry answers the object
    assert "deletionTimestamp" not in answer["metadata"]
    assert emulator.objects("pods") == []


def test_a_scheduled_pod_is_deleted_gracefully(emulator: Emulator) -> None:
    """Without a kubelet to stop its containers, a scheduled pod stays terminating until a
    DELETE with gracePeriodSeconds=0 (what the kubelet sends, or kubectl --force)."""
    http_call(emulator, "POST", PODS, pod("p", nodeName="emulator-node-1"))
    code, _, answer = http_call(emulator, "DELETE", f"{PODS}/p")
    assert (code, answer["kind"]) == (200, "Pod")
    assert answer["metadata"]["deletionGracePeriodSeconds"] == 30
    (stored,) = emulator.objects("pods")
    assert stored["metadata"]["deletionTimestamp"] == answer["metadata"]["deletionTimestamp"]
    http_call(emulator, "DELETE", f"{PODS}/p", {"gracePeriodSeconds": 0})
    assert emulator.objects("pods") == []


def test_a_status_write_does_not_end_a_graceful_deletion(emulator: Emulator) -> None:
    http_call(emulator, "POST", PODS, pod("p", nodeName="emulator-node-1"))
    http_call(emulator, "DELETE", f"{PODS}/p")
    code, _, _ = http_call(
        emulator, "PATCH", f"{PODS}/p/status", {"status": {"phase": "Failed"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    assert code == 200
    (kept,) = emulator.objects("pods")
    assert kept["status"]["phase"] == "Failed"
    assert kept["metadata"]["deletionTimestamp"]


def test_a_finished_pod_is_deleted_at_once(core: Any, emulator: Emulator) -> None:
    core.create_namespaced_pod("default", pod("p", nodeName="emulator-node-1"))
    core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Succeeded"}})
    core.delete_namespaced_pod("p", "default")
    assert emulator.objects("pods") == []


def test_a_body_over_3_mib_is_413(emulator: Emulator) -> None:
    body = pod("big")
    body["metadata"]["annotations"] = {"x": "y" * (3 * 1024 * 1024)}
    code, _, status = http_call(emulator, "POST", PODS, body)
    assert (code, status["reason"]) == (413, "RequestEntityTooLarge")
    assert emulator.objects("pods") == []


def test_logs_of_a_pod_no_kubelet_runs(core: Any) -> None:
    core.create_namespaced_pod("default", pod("p"))
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("p", "default")
    assert err.value.status == 400
    assert error_body(err.value)["message"] == "pod p does not have a host assigned"
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod_log("nope", "default")
    assert missing.value.status == 404


AGO = "<15 minutes ago>"  # filled in when the test runs


def _container(state: dict[str, Any], ready: bool = False, **extra: Any) -> dict[str, Any]:
    return {"name": "main", "image": "busybox", "imageID": "", "ready": ready,
            "restartCount": 0, "state": state, **extra}  # fmt: skip


PRINTED = [
    ({"phase": "Pending"}, "0/1", "Pending", "0"),
    ({"phase": "Running", "containerStatuses": [_container({"running": {}}, ready=True)]},
     "1/1", "Running", "0"),
    ({"phase": "Succeeded", "containerStatuses": [
        _container({"terminated": {"exitCode": 0, "reason": "Completed"}})]},
     "0/1", "Completed", "0"),
    ({"phase": "Failed", "containerStatuses": [
        _container({"terminated": {"exitCode": 3, "reason": "Error"}})]}, "0/1", "Error", "0"),
    ({"phase": "Failed", "containerStatuses": [
        _container({"terminated": {"exitCode": 137, "reason": "OOMKilled"}})]},
     "0/1", "OOMKilled", "0"),
    ({"phase": "Failed", "containerStatuses": [_container({"terminated": {"exitCode": 2}})]},
     "0/1", "ExitCode:2", "0"),
    ({"phase": "Pending", "containerStatuses": [
        _container({"waiting": {"reason": "ImagePullBackOff"}})]},
     "0/1", "ImagePullBackOff", "0"),
    ({"phase": "Running", "containerStatuses": [_container(
        {"running": {}}, ready=True, restartCount=2,
        lastState={"terminated": {"exitCode": 1, "finishedAt": AGO}})]},
     "1/1", "Running", "2 (15m ago)"),
]  # fmt: skip


@pytest.mark.parametrize(("status", "ready", "shown", "restarts"), PRINTED)
def test_pod_printer(
    core: Any, emulator: Emulator, status: dict[str, Any], ready: str, shown: str, restarts: str
) -> None:
    core.create_namespaced_pod("default", pod("p"))
    ago = _stamp(datetime.now(UTC) - timedelta(minutes=15))
    status = json.loads(json.dumps(status).replace(AGO, ago))
    core.patch_namespaced_pod_status("p", "default", {"status": status})
    _, _, table = http_call(emulator, "GET", PODS, headers={"Accept": TABLE_ACCEPT})
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == [
        "Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node",
        "Readiness Gates",
    ]  # fmt: skip
    (row,) = table["rows"]
    assert row["cells"][:4] == ["p", ready, shown, restarts]


def test_a_terminating_pod_prints_terminating(emulator: Emulator) -> None:
    http_call(emulator, "POST", PODS, pod("p", nodeName="emulator-node-1"))
    http_call(emulator, "DELETE", f"{PODS}/p")
    _, _, table = http_call(emulator, "GET", PODS, headers={"Accept": TABLE_ACCEPT})
    assert table["rows"][0]["cells"][2] == "Terminating"


def test_kubectl_get_pods(core: Any, kubectl: Kubectl) -> None:
    core.create_namespaced_pod("default", pod("p", nodeName="emulator-node-1"))
    rows = [re.split(r"\s{2,}", line.strip()) for line in kubectl("get", "pods").splitlines()]
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows[1][:4] == ["p", "0/1", "Pending", "0"]
    wide = kubectl("get", "po", "p", "-o", "wide").splitlines()
    assert re.split(r"\s{2,}", wide[0].strip())[5:] == [
        "IP", "NODE", "NOMINATED NODE", "READINESS GATES"
    ]  # fmt: skip
    assert re.split(r"\s{2,}", wide[1].strip())[5:7] == ["<none>", "emulator-node-1"]
