"""Jobs the real API server refuses with 422 Invalid although their JSON decodes: ephemeral
containers in the template, a pod failure policy with a restart policy other than Never, a
mount of an undeclared volume, a request above its limit, more than 256 KiB of annotations.
Written from pkg/apis/core/validation (ValidatePodTemplateSpec, ValidateVolumeMounts,
ValidateResourceRequirements), pkg/apis/batch/validation (validateJobSpec) and apimachinery's
ValidateAnnotationsSize; messages as Kubernetes 1.32 words them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.k8s.emulator import Emulator
from tests.k8s.emulator.manifests import container, job, pod
from tests.k8s.support import http_call

JOBS = "/apis/batch/v1/namespaces/default/jobs"
PODS = "/api/v1/namespaces/default/pods"
POLICY = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}
LIMIT = 256 * 1024


def _pod(body: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = body["spec"]["template"]["spec"]
    return spec


def _with(**pod: Any) -> dict[str, Any]:
    body = job("bad")
    _pod(body).update(pod)
    return body


def _mounting(name: str, volumes: list[str]) -> dict[str, Any]:
    body = _with(volumes=[{"name": v, "emptyDir": {}} for v in volumes])
    _pod(body)["containers"][0]["volumeMounts"] = [{"name": name, "mountPath": "/m"}]
    return body


def _resources(requests: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    body = job("bad")
    _pod(body)["containers"][0]["resources"] = {"requests": requests, "limits": limits}
    return body


def _policy(restart: str, policy: dict[str, Any] | None = POLICY) -> dict[str, Any]:
    body = job("bad", podFailurePolicy=policy)
    _pod(body)["restartPolicy"] = restart
    return body


def _annotated(where: str, size: int, char: str = "x") -> dict[str, Any]:
    body = job("bad")
    meta = (
        body["metadata"] if where == "job" else body["spec"]["template"].setdefault("metadata", {})
    )
    meta["annotations"] = {"note": char * ((size - 4) // len(char.encode()))}
    return body


C0 = "spec.template.spec.containers[0]"
POLICY_MESSAGE = (
    'Invalid value: "OnFailure": only "Never" is supported when podFailurePolicy is specified'
)


@pytest.mark.parametrize(
    ("body", "field", "reason", "message"),
    [
        (_with(ephemeralContainers=[{"name": "debug", "image": "busybox"}]),
         "spec.template.spec.ephemeralContainers", "FieldValueForbidden",
         "Forbidden: ephemeral containers not allowed in pod template"),
        (_policy("OnFailure"), "spec.template.spec.restartPolicy", "FieldValueInvalid",
         POLICY_MESSAGE),
        (_policy("OnFailure", {"rules": []}), "spec.template.spec.restartPolicy",
         "FieldValueInvalid", POLICY_MESSAGE),
        (_mounting("data", ["cache"]), f"{C0}.volumeMounts[0].name", "FieldValueNotFound",
         'Not found: "data"'),
        (_mounting("data", []), f"{C0}.volumeMounts[0].name", "FieldValueNotFound",
         'Not found: "data"'),
        (_resources({"cpu": "2"}, {"cpu": "1"}), f"{C0}.resources.requests", "FieldValueInvalid",
         'Invalid value: "2": must be less than or equal to cpu limit of 1'),
        (_resources({"cpu": "1001m"}, {"cpu": "1"}), f"{C0}.resources.requests",
         "FieldValueInvalid",
         'Invalid value: "1001m": must be less than or equal to cpu limit of 1'),
        (_resources({"memory": "1Gi"}, {"memory": "1G"}), f"{C0}.resources.requests",
         "FieldValueInvalid",
         'Invalid value: "1Gi": must be less than or equal to memory limit of 1G'),
        (_annotated("template", LIMIT + 1), "spec.template.annotations", "FieldValueTooLong",
         f"Too long: may not be more than {LIMIT} bytes"),
        (_annotated("template", LIMIT + 4, "é"), "spec.template.annotations",
         "FieldValueTooLong", f"Too long: may not be more than {LIMIT} bytes"),
        (_annotated("job", LIMIT + 1), "metadata.annotations", "FieldValueTooLong",
         f"Too long: may not be more than {LIMIT} bytes"),
    ],
)  # fmt: skip
def test_refused_jobs_are_422_with_the_field_in_causes(
    emulator: Emulator, body: dict[str, Any], field: str, reason: str, message: str
) -> None:
    code, _, status = http_call(emulator, "POST", JOBS, body)
    assert (code, status["kind"], status["reason"]) == (422, "Status", "Invalid")
    assert status["message"] == f'Job.batch "bad" is invalid: {field}: {message}'
    assert status["details"]["causes"] == [{"reason": reason, "message": message, "field": field}]
    assert emulator.objects("jobs") == []


@pytest.mark.parametrize(
    "body",
    [
        _policy("Never"),
        _policy("OnFailure", None),
        _with(ephemeralContainers=[]),
        _mounting("data", ["data"]),
        _resources({"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "1024Mi"}),
        _resources({"cpu": "0.1"}, {"cpu": "100m"}),
        _resources({"cpu": "64"}, {"memory": "1Gi"}),
        _resources({"memory": 268435456}, {"memory": "256Mi"}),
        # Digits past any resource are the server's to refuse while decoding, not a 500 here.
        _resources({"cpu": "1" * 5000}, {"cpu": "1" * 5000 + "0"}),
        _annotated("template", LIMIT),
        _annotated("job", LIMIT),
    ],
    ids=[
        "policy-never",
        "no-policy",
        "no-ephemeral",
        "declared-volume",
        "under-limits",
        "equal-cpu",
        "no-limit-of-it",
        "number-quantity",
        "thousands-of-digits",
        "template-annotations-at-limit",
        "job-annotations-at-limit",
    ],
)
def test_their_neighbours_are_created(emulator: Emulator, body: dict[str, Any]) -> None:
    code, _, created = http_call(emulator, "POST", JOBS, body)
    assert code == 201, created
    assert [j["metadata"]["name"] for j in emulator.objects("jobs")] == ["bad"]


def test_a_mount_without_a_name_is_required_and_not_found(emulator: Emulator) -> None:
    body = _mounting("", ["data"])
    _, _, status = http_call(emulator, "POST", JOBS, body)
    assert [(c["field"], c["message"]) for c in status["details"]["causes"]] == [
        (f"{C0}.volumeMounts[0].name", "Required value"),
        (f"{C0}.volumeMounts[0].name", 'Not found: ""'),
    ]


def test_init_containers_and_pods_are_held_to_the_same_rules(emulator: Emulator) -> None:
    body = job("bad")
    init = {
        **container("true", "init"),
        "resources": {"requests": {"cpu": 2}, "limits": {"cpu": 1}},
    }
    _pod(body)["initContainers"] = [init]
    _, _, status = http_call(emulator, "POST", JOBS, body)
    assert [c["field"] for c in status["details"]["causes"]] == [
        "spec.template.spec.initContainers[0].resources.requests"
    ]
    bare = pod("p")
    bare["spec"]["containers"][0]["volumeMounts"] = [{"name": "v", "mountPath": "/v"}]
    code, _, status = http_call(emulator, "POST", PODS, bare)
    assert (code, status["message"]) == (
        422,
        'Pod "p" is invalid: spec.containers[0].volumeMounts[0].name: Not found: "v"',
    )
    assert emulator.objects("pods") == []
