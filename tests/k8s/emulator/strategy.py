"""``Strategy``: how the real server's registry treats one built-in resource beyond the generic
rules of the store (defaulting and validation on create and update, graceful deletion, the
default propagation policy of a delete). The generic behaviour is this base class."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

BACKGROUND, FOREGROUND, ORPHAN = "Background", "Foreground", "Orphan"


class Strategy:
    """The resource-specific hooks; the base class does nothing."""

    #: What a DELETE without ``propagationPolicy`` does to the object's dependents.
    default_propagation = BACKGROUND

    def prepare_create(self, obj: Obj) -> None:
        """Default and validate a new object (``uid``, ``name``, ``namespace`` already set).
        Raises a 422 ``ApiError`` when the object is invalid."""

    def prepare_update(self, old: Obj, new: Obj) -> None:
        """Default and validate a write of the main resource (not ``/status``). Raises a 422
        ``ApiError`` when the new object is invalid or changes an immutable field."""

    def grace_seconds(self, obj: Obj, requested: int | None) -> int:
        """The graceful deletion period of a DELETE (``requested`` is ``gracePeriodSeconds``
        from the options); 0 removes the object at once."""
        return 0


def delete_options(body: Any, params: dict[str, str]) -> Obj:
    """``DeleteOptions`` from the body, completed by the query parameters a client may use
    instead (``propagationPolicy``, ``gracePeriodSeconds``, ``orphanDependents``)."""
    options: Obj = dict(body) if isinstance(body, dict) else {}
    if "propagationPolicy" in params:
        options.setdefault("propagationPolicy", params["propagationPolicy"])
    if "orphanDependents" in params:
        options.setdefault("orphanDependents", params["orphanDependents"].lower() in ("1", "true"))
    if params.get("gracePeriodSeconds", "").lstrip("-").isdigit():
        options.setdefault("gracePeriodSeconds", int(params["gracePeriodSeconds"]))
    return options
