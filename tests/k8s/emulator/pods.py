"""core/v1 Pods in the API: the defaults, validation and graceful deletion of the real server's
pod registry, and the pod-spec rules that a Job's pod template shares."""

from __future__ import annotations

import copy
from typing import Any

from . import errors, naming
from .errors import FieldError
from .strategy import Strategy

Obj = dict[str, Any]

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
TERMINAL_PHASES = ("Succeeded", "Failed")
_UPDATABLE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative)"
)


def _pull_policy(image: str) -> str:
    """``SetDefaults_Container``: ``Always`` for ``:latest`` or no tag, else ``IfNotPresent``."""
    if "@" in image:
        return "IfNotPresent"
    tag = image.rpartition("/")[2].partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def default_pod_spec(spec: Obj) -> None:
    """``SetDefaults_PodSpec`` and ``SetDefaults_Container``, for the fields a client sees."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for container in spec.get("containers") or []:
        if not isinstance(container, dict):
            continue
        if isinstance(container.get("image"), str):
            container.setdefault("imagePullPolicy", _pull_policy(container["image"]))
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _container_errors(container: Any, path: str, seen: set[str]) -> list[FieldError]:
    if not isinstance(container, dict):
        return [errors.invalid_value(path, container, "must be an object")]
    found: list[FieldError] = []
    name = container.get("name")
    if not name:
        found.append(errors.required(f"{path}.name"))
    elif not isinstance(name, str) or not naming.LABEL.match(name) or len(name) > 63:
        found.append(errors.invalid_value(f"{path}.name", name, naming.LABEL_MSG))
    elif name in seen:
        found.append(errors.duplicate(f"{path}.name", name))
    else:
        seen.add(name)
    image = container.get("image")
    if not isinstance(image, str) or not image.strip():
        found.append(errors.required(f"{path}.image"))
    for field in ("command", "args"):
        if field in container and not _strings(container[field]):
            found.append(
                errors.invalid_value(f"{path}.{field}", container[field], "must be strings")
            )
    env = container.get("env") or []
    if not isinstance(env, list):
        found.append(errors.invalid_value(f"{path}.env", env, "must be a list"))
        env = []
    for j, var in enumerate(env):
        if not isinstance(var, dict) or not var.get("name"):
            found.append(errors.required(f"{path}.env[{j}].name"))
    return found


def pod_spec_errors(spec: Any, path: str) -> list[FieldError]:
    """``ValidatePodSpec``, for what a pod that runs needs: containers with a unique DNS-label
    name and an image, a known restart policy, non-negative periods."""
    if not isinstance(spec, dict):
        return [errors.required(path)]
    found: list[FieldError] = []
    containers = spec.get("containers")
    if not containers:
        found.append(errors.required(f"{path}.containers"))
    elif not isinstance(containers, list):
        found.append(errors.invalid_value(f"{path}.containers", containers, "must be a list"))
    else:
        seen: set[str] = set()
        for i, container in enumerate(containers):
            found += _container_errors(container, f"{path}.containers[{i}]", seen)
    policy = spec.get("restartPolicy")
    if policy not in RESTART_POLICIES:
        found.append(errors.not_supported(f"{path}.restartPolicy", policy, RESTART_POLICIES))
    grace = spec.get("terminationGracePeriodSeconds")
    if not isinstance(grace, int) or grace < 0:
        found.append(
            errors.invalid_value(
                f"{path}.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0"
            )
        )
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not isinstance(deadline, int) or deadline < 1):
        found.append(
            errors.invalid_value(
                f"{path}.activeDeadlineSeconds",
                deadline,
                "must be between 1 and 2147483647, inclusive",
            )
        )
    return found


def qos_class(spec: Obj) -> str:
    """``GetPodQOS``, simplified to the containers' requests and limits."""
    resources = [c.get("resources") or {} for c in spec.get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        r.get("limits", {}).get(k) is not None
        and r.get("requests", r.get("limits", {})).get(k) == r["limits"][k]
        for r in resources
        for k in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _mutable_stripped(spec: Obj) -> Obj:
    stripped = copy.deepcopy(spec)
    for field in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        stripped.pop(field, None)
    for container in stripped.get("containers") or []:
        if isinstance(container, dict):
            container.pop("image", None)
            container.pop("imagePullPolicy", None)
    return stripped


class PodStrategy(Strategy):
    def prepare_create(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            default_pod_spec(spec)
        meta = obj["metadata"]
        found = naming.label_errors(meta.get("labels"), "metadata.labels")
        found += pod_spec_errors(spec, "spec")
        if found:
            raise errors.invalid_fields("Pod", "", meta["name"], found)
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj["spec"])}

    def prepare_update(self, old: Obj, new: Obj) -> None:
        spec = new.get("spec")
        if isinstance(spec, dict):
            default_pod_spec(spec)
        name = old["metadata"]["name"]
        found = naming.label_errors(new["metadata"].get("labels"), "metadata.labels")
        found += pod_spec_errors(spec, "spec")
        if not found and _mutable_stripped(old["spec"]) != _mutable_stripped(new["spec"]):
            found.append(errors.forbidden("spec", _UPDATABLE))
        if found:
            raise errors.invalid_fields("Pod", "", name, found)

    def grace_seconds(self, obj: Obj, requested: int | None) -> int:
        # As the pod registry: an unscheduled or finished pod goes at once; otherwise the
        # kubelet must stop its containers first.
        if not obj.get("spec", {}).get("nodeName"):
            return 0
        if obj.get("status", {}).get("phase") in TERMINAL_PHASES:
            return 0
        if requested is not None:
            return max(0, requested)
        return int(obj["spec"].get("terminationGracePeriodSeconds", 30))
