"""Small builders of the manifests the emulator's Job and Pod tests create, and readers of
what comes back (plain dicts, as ``emulator.objects`` or a raw call returns them)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def container(
    script: str, name: str = "main", image: str = "busybox:1.36", env: dict[str, str] | None = None
) -> Obj:
    """A container that runs ``sh -c script`` (the emulator runs it as a local process)."""
    body: Obj = {"name": name, "image": image, "command": ["sh", "-c", script]}
    if env:
        body["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return body


def job(
    name: str,
    script: str = "true",
    *,
    namespace: str = "default",
    restart_policy: str = "Never",
    containers: list[Obj] | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> Obj:
    """A batch/v1 Job running ``script`` (or ``containers``); ``spec`` adds JobSpec fields."""
    meta: Obj = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    pod_spec = {
        "restartPolicy": restart_policy,
        "containers": containers if containers is not None else [container(script)],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {**spec, "template": {"spec": pod_spec}},
    }


def pod(name: str, script: str = "true", *, namespace: str = "default", **spec: Any) -> Obj:
    """A bare core/v1 Pod running ``script``; ``spec`` adds PodSpec fields."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [container(script)], **spec},
    }


def condition(obj: Obj, kind: str) -> Obj | None:
    """The condition of that type with status True, if any."""
    for found in obj.get("status", {}).get("conditions") or []:
        if found.get("type") == kind and found.get("status") == "True":
            assert isinstance(found, dict)
            return found
    return None


def finished(job_obj: Obj) -> str | None:
    """``Complete`` or ``Failed`` once the Job has a terminal condition, else None."""
    for kind in ("Complete", "Failed"):
        if condition(job_obj, kind):
            return kind
    return None


def owned_by(obj: Obj, owner: Obj) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []
    return any(r.get("uid") == owner["metadata"]["uid"] for r in refs)
