"""What registering, changing and deleting a CustomResourceDefinition does to the store: its
status (``NamesAccepted``, ``Established``), the resource types it serves, its instances."""

from __future__ import annotations

import copy
from typing import Any

from .types import Registry, crd_resource_types

Obj = dict[str, Any]


def crd_status(crd: Obj, now: str, old: Obj | None = None) -> Obj:
    """The status the real server writes: names accepted, established, stored versions."""
    spec = crd["spec"]
    names = copy.deepcopy(spec["names"])
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", names["kind"] + "List")
    old_conditions = (old or {}).get("status", {}).get("conditions") or [{}]
    stamp = old_conditions[0].get("lastTransitionTime") or now
    return {
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "lastTransitionTime": stamp,
                "reason": "NoConflicts",
                "message": "no conflicts found",
            },
            {
                "type": "Established",
                "status": "True",
                "lastTransitionTime": stamp,
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            },
        ],
        "acceptedNames": names,
        "storedVersions": [v["name"] for v in spec["versions"] if v.get("storage")],
    }


def instances_key(crd: Obj) -> str:
    """The storage key of a CRD's instances, e.g. ``crontasks.crontask.dev``."""
    return f"{crd['spec']['names']['plural']}.{crd['spec']['group']}"


def serve(registry: Registry, crd: Obj, deleted: bool) -> None:
    """Register (or, once deleted, unregister) the resource types a CRD declares."""
    group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
    registry.remove_group_resource(group, plural)
    if not deleted:
        for rtype in crd_resource_types(crd):
            registry.add(rtype)
