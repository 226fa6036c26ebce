"""A CronTask object as crontask reads it: the task document made of it (its name,
namespace, the labels and annotations the model can hold, its spec), and the fingerprint
that tells a change of it from a status-only update (``document_of``). Labels and
annotations crontask has no use for never make the object invalid (``_held``).
"""

from __future__ import annotations

from typing import Any

from reconciler.core.fields import MAX_ITEMS, MAX_LABEL_KEY, MAX_LABEL_VALUE, MAX_TEXT

# kubectl's copy of the whole object: noise in a task's resource, and it changes with every
# apply even when nothing else does.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
OWN_KEYS = "crontask.dev/"  # crontask's own annotations (and labels)


def document_of(obj: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The task document of a CronTask object, and what a change of it is told by."""
    meta = obj.get("metadata") or {}
    labels = _labels(meta.get("labels"))
    annotations = _annotations(meta.get("annotations"))
    document = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace") or "default",
            "labels": labels,
            "annotations": annotations,
        },
        "spec": obj.get("spec"),
    }
    # Labels and annotations count (a run-now annotation must reach the pass), the status
    # and the server's metadata do not, but for the uid: an object deleted and created again
    # with the same spec is another object, whose status and Events start afresh (the
    # generation alone, 1 again, would not tell). The planner compares spec hashes, so a
    # metadata-only change never touches the job.
    fingerprint = repr(
        (
            meta.get("uid"),
            meta.get("generation"),
            sorted(labels.items()),
            sorted(annotations.items()),
            document["spec"],
        )
    )
    return document, fingerprint


def _annotations(given: object) -> dict[str, Any]:
    """The annotations that reach the task. The API server allows 256 KiB of them in all, the
    model 256 of at most 32 KiB each: one crontask has no use for (a tool's bookkeeping, kubectl's
    last-applied configuration) must not make the CronTask invalid."""
    return _held(given, MAX_TEXT, skip=LAST_APPLIED)


def _labels(given: object) -> dict[str, Any]:
    """The labels that reach the task. The API server takes any number of them (each checked),
    the model 256: a policy engine's or a GitOps tool's must not make the CronTask invalid."""
    return _held(given, MAX_LABEL_VALUE)


def _held(given: object, max_value: int, skip: str | None = None) -> dict[str, Any]:
    """Of a label or annotation map, what the model can hold. crontask's own
    (``crontask.dev/``) are kept as they are, and checked; of the others, those the model can
    hold (values of at most ``max_value`` characters), in the server's order, while there is
    room."""
    if not isinstance(given, dict):
        return {}
    own = {k: v for k, v in given.items() if str(k).startswith(OWN_KEYS)}
    others: dict[str, Any] = {}
    for key, value in given.items():
        if len(others) + len(own) >= MAX_ITEMS:
            break
        if key == skip or key in own:
            continue
        if isinstance(value, str) and len(value) <= max_value and 0 < len(key) <= MAX_LABEL_KEY:
            others[key] = value
    return {**others, **own}
