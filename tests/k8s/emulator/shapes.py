"""The JSON types of the fields the emulator reads, checked as the real server's decoding
does: a field of the wrong type is 400 BadRequest (``json: cannot unmarshal string into Go
struct field ... of type ...``), before any validation. Unknown fields and ``null`` pass."""

from __future__ import annotations

from typing import Any

from . import errors
from .timefmt import parse_time

Shape = (
    Any  # "string" | "int" | "bool" | "time" | ("map", Shape) | ("list", Shape) | dict[str, Shape]
)
Obj = dict[str, Any]

STR, INT, BOOL, TIME, ANY = "string", "int", "bool", "time", "any"


def _map(of: Shape) -> Shape:
    return ("map", of)


def _list(of: Shape) -> Shape:
    return ("list", of)


OWNER_REFERENCE = {
    "apiVersion": STR,
    "kind": STR,
    "name": STR,
    "uid": STR,
    "controller": BOOL,
    "blockOwnerDeletion": BOOL,
}
METADATA = {
    "name": STR,
    "generateName": STR,
    "namespace": STR,
    "uid": STR,
    "resourceVersion": STR,
    "labels": _map(STR),
    "annotations": _map(STR),
    "finalizers": _list(STR),
    "ownerReferences": _list(OWNER_REFERENCE),
    "creationTimestamp": TIME,
    "deletionTimestamp": TIME,
    "deletionGracePeriodSeconds": INT,
    "generation": INT,
}
_ENV = {"name": STR, "value": STR, "valueFrom": {"fieldRef": {"fieldPath": STR}}}
_CONTAINER = {
    "name": STR,
    "image": STR,
    "command": _list(STR),
    "args": _list(STR),
    "env": _list(_ENV),
    "imagePullPolicy": STR,
    "resources": {"limits": _map(ANY), "requests": _map(ANY)},
}
_POD_SPEC = {
    "containers": _list(_CONTAINER),
    "restartPolicy": STR,
    "nodeName": STR,
    "terminationGracePeriodSeconds": INT,
    "activeDeadlineSeconds": INT,
    "serviceAccountName": STR,
    "readinessGates": _list({"conditionType": STR}),
}
_CONDITION = {
    "type": STR,
    "status": STR,
    "reason": STR,
    "message": STR,
    "lastTransitionTime": TIME,
    "lastProbeTime": TIME,
}
_STATE = {
    "waiting": {"reason": STR, "message": STR},
    "running": {"startedAt": TIME},
    "terminated": {
        "exitCode": INT,
        "signal": INT,
        "reason": STR,
        "message": STR,
        "startedAt": TIME,
        "finishedAt": TIME,
    },
}
_POD_STATUS = {
    "phase": STR,
    "reason": STR,
    "conditions": _list(_CONDITION),
    "nominatedNodeName": STR,
    "podIPs": _list({"ip": STR}),
    "startTime": TIME,
    "containerStatuses": _list(
        {
            "name": STR,
            "ready": BOOL,
            "started": BOOL,
            "restartCount": INT,
            "state": _STATE,
            "lastState": _STATE,
        }
    ),
}
_SELECTOR = {
    "matchLabels": _map(STR),
    "matchExpressions": _list({"key": STR, "operator": STR, "values": _list(STR)}),
}
_JOB_SPEC = {
    "parallelism": INT,
    "completions": INT,
    "activeDeadlineSeconds": INT,
    "backoffLimit": INT,
    "ttlSecondsAfterFinished": INT,
    "selector": _SELECTOR,
    "manualSelector": BOOL,
    "completionMode": STR,
    "suspend": BOOL,
    "podReplacementPolicy": STR,
    "managedBy": STR,
    "template": {"metadata": METADATA, "spec": _POD_SPEC},
}
_JOB_STATUS = {
    "startTime": TIME,
    "completionTime": TIME,
    "active": INT,
    "succeeded": INT,
    "failed": INT,
    "ready": INT,
    "terminating": INT,
    "conditions": _list(_CONDITION),
}
_GENERIC: Obj = {"metadata": METADATA}
SHAPES: dict[str, Obj] = {
    "pods": {"metadata": METADATA, "spec": _POD_SPEC, "status": _POD_STATUS},
    "jobs.batch": {"metadata": METADATA, "spec": _JOB_SPEC, "status": _JOB_STATUS},
}
_GO_NAMES = {STR: "string", INT: "int64", BOOL: "bool", TIME: "v1.Time"}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _is_time(value: str) -> bool:
    try:
        parse_time(value)
    except ValueError:
        return False
    return True


def _fits(value: Any, shape: Shape) -> bool:
    if shape == ANY:
        return True
    if shape == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if shape == BOOL:
        return isinstance(value, bool)
    if shape == TIME:
        return isinstance(value, str) and _is_time(value)
    if shape == STR:
        return isinstance(value, str)
    if isinstance(shape, tuple):
        return isinstance(value, dict if shape[0] == "map" else list)
    return isinstance(value, dict)


def _problem(value: Any, shape: Shape, path: str) -> tuple[str, str] | None:
    """The first (path, expected type) where ``value`` does not fit ``shape``."""
    if value is None:
        return None
    if not _fits(value, shape):
        expected = (
            shape if isinstance(shape, str) else ("object" if isinstance(shape, dict) else shape[0])
        )
        return path, _GO_NAMES.get(expected, expected)
    if isinstance(shape, tuple):
        items = value.items() if shape[0] == "map" else enumerate(value)
        for key, item in items:
            found = _problem(item, shape[1], f"{path}[{key}]")
            if found:
                return found
    elif isinstance(shape, dict):
        for key, sub in shape.items():
            found = _problem(value.get(key), sub, f"{path}.{key}" if path else key)
            if found:
                return found
    return None


def check(key: str, kind: str, version: str, obj: Any) -> None:
    """400 BadRequest when a field the emulator reads has the wrong JSON type."""
    found = _problem(obj, SHAPES.get(key, _GENERIC), "")
    if found is None:
        return
    path, expected = found
    value = obj
    for part in path.replace("[", ".").replace("]", "").split("."):
        value = value[int(part)] if isinstance(value, list) else value.get(part)
    raise errors.bad_request(
        f'{kind} in version "{version}" cannot be handled as a {kind}: json: cannot unmarshal '
        f"{_json_type(value)} into Go struct field {kind}.{path} of type {expected}"
    )
