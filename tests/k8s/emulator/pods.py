"""core/v1 Pods in the API: the defaults, validation and graceful deletion of the real server's
pod registry, and the pod-spec rules that a Job's pod template shares."""

from __future__ import annotations

import copy
import re
from fractions import Fraction
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
    found += _mount_and_resource_errors(spec, path)
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


# resource.Quantity: a signed decimal, then a binary (Ki..Ei) or decimal (n..E) suffix or an
# exponent. The real server refuses what does not parse while decoding; here it is skipped.
_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([KMGTPE]i)|([numkMGTPE]?)|[eE]([+-]?\d{1,4}))$"
)
_DECIMAL_POWERS = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15}


def quantity(value: Any) -> Fraction | None:
    """The exact value of a quantity (``500m``, ``1Gi``, ``2e3``, 3), None if it is none."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    match = _QUANTITY.fullmatch(str(value).strip())  # as Quantity.UnmarshalJSON trims
    if match is None:
        return None
    number, binary, decimal, exponent = match.groups()
    if len(number) > 64:  # no resource has as many digits (and int() refuses over 4 300)
        return None
    if binary:
        return Fraction(number) * Fraction(1024 ** ("KMGTPE".index(binary[0]) + 1))
    power = int(exponent) if exponent is not None else {**_DECIMAL_POWERS, "E": 18}[decimal]
    scale = Fraction(10 ** abs(power))
    return Fraction(number) * (scale if power >= 0 else 1 / scale)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _mount_and_resource_errors(spec: Obj, path: str) -> list[FieldError]:
    """``ValidateVolumeMounts`` (a mount names a volume of the pod, or both ``Required`` and
    ``Not found`` if it names none) and ``ValidateResourceRequirements`` (no request above its
    limit), for init containers and containers."""
    volumes = spec.get("volumes")
    declared = {v.get("name") for v in _list(volumes) if isinstance(v, dict)}
    found: list[FieldError] = []
    for field in ("initContainers", "containers"):
        for i, container in enumerate(_list(spec.get(field))):
            if not isinstance(container, dict):
                continue
            where = f"{path}.{field}[{i}]"
            mounts = container.get("volumeMounts")
            for j, mount in enumerate(_list(mounts)):
                name = mount.get("name") if isinstance(mount, dict) else None
                name = name if isinstance(name, str) else ""
                if not name:
                    found.append(errors.required(f"{where}.volumeMounts[{j}].name"))
                if name not in declared:  # an empty name too: the real server says both
                    found.append(errors.field_not_found(f"{where}.volumeMounts[{j}].name", name))
            found += _resource_errors(container.get("resources"), f"{where}.resources")
    return found


def _resource_errors(resources: Any, path: str) -> list[FieldError]:
    if not isinstance(resources, dict):
        return []
    requests, limits = resources.get("requests"), resources.get("limits")
    if not isinstance(requests, dict) or not isinstance(limits, dict):
        return []
    found: list[FieldError] = []
    for name, request in requests.items():
        wanted, most = quantity(request), quantity(limits.get(name))
        if wanted is not None and most is not None and wanted > most:
            # The real server shows both canonical (1000m as "1"); these are as given.
            detail = f"must be less than or equal to {name} limit of {limits[name]}"
            found.append(errors.invalid_value(f"{path}.requests", str(request), detail))
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
