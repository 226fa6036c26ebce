"""core/v1 Events as the controllers and the kubelet record them (``kubectl describe``)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from .timefmt import now_rfc3339

if TYPE_CHECKING:
    from .store import Store

Obj = dict[str, Any]


def record(store: Store, about: Obj, kind: str, reason: str, message: str, component: str) -> None:
    """Create an Event about ``about`` (a Job, a Pod) in its namespace."""
    meta = about["metadata"]
    rtype = store.registry.lookup("", "v1", "events")
    assert rtype is not None
    now = now_rfc3339()
    event = {
        "metadata": {
            "name": f"{meta['name']}.{secrets.token_hex(8)}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": about.get("apiVersion"),
            "kind": about.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": "",
    }
    store.create(rtype, meta["namespace"], event)
