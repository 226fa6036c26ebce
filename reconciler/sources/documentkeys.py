"""The task key a broken CronTask document still names (``documents``), read from its data or,
for a document that cannot be built or repeats keys, from its YAML nodes.

A CronTask run together with another object (``cat task.yaml configmap.yaml``, no ``---``: an
``apiVersion`` or ``kind`` repeats, one of them ours) holds two objects' keys in one mapping.
Its errors are named after the CronTask's own ``metadata``: the keys are split into objects
where a key repeats within the current one (how the files were concatenated), and the object
that says most plainly it is a CronTask (its kind, then its apiVersion) names the task; with
no ``metadata`` of its own, nothing does (never the other object's name). PyYAML's rule, the
last ``metadata``, named them after the other object whenever it came second, and the task it
named was kept, the CronTask removed. A single object that repeats ``metadata`` (no repeated
``apiVersion`` or ``kind``) is named by its last one, as PyYAML builds it.

A ``namespace`` that is present but not a string (``1``, ``null``, ``yes``) names no task.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from reconciler.core.model import KIND
from reconciler.core.runs import DNS1123_LABEL
from reconciler.sources.yamlwalk import MAP, STR

KIND_FIELDS = ("apiVersion", "kind")
_LABEL = re.compile(DNS1123_LABEL)


def claims_ours(api_version: Any, kind: Any) -> bool:
    """Whether an object says it is a CronTask, by its kind or by an apiVersion like ours."""
    return (isinstance(kind, str) and kind.lower() == KIND.lower()) or (
        isinstance(api_version, str) and api_version.lower().startswith("crontask")
    )


def key_of_node(node: yaml.Node, run_together: bool) -> str | None:
    """The task key a document that cannot be built, or repeats keys, still names in plain
    ``metadata``: of objects ``run_together``, the CronTask's own (see the module docstring)."""
    metadata = _task_metadata(node) if run_together else plain_value(node, "metadata")
    if metadata is None:
        return None
    names = {}
    for field in ("name", "namespace"):
        value = plain_value(metadata, field)
        if value is None:
            continue
        if not (isinstance(value, yaml.ScalarNode) and value.tag == STR):
            return None  # a namespace of 1 is no namespace, and not the default one
        names[field] = value.value
    return key_of({"metadata": names}) if "name" in names else None


def _task_metadata(node: yaml.Node) -> yaml.Node | None:
    """The ``metadata`` of the CronTask among objects run together in a plain mapping node."""
    best: tuple[int, yaml.Node | None] = (0, None)  # the strongest claim so far, its metadata
    for fields in _objects(node):
        strength = _claim(fields)
        if strength and strength >= best[0]:  # of equal claims the last, as PyYAML's data
            best = (strength, fields.get("metadata"))
    return best[1]


def _objects(node: yaml.Node) -> list[dict[str, yaml.Node]]:
    """The keys of a plain mapping node split into objects, a new one at each key that repeats
    within the current one: ``cat a.yaml b.yaml`` puts b's keys after a's."""
    if type(node) is not yaml.MappingNode or node.tag != MAP:
        return []
    objects: list[dict[str, yaml.Node]] = [{}]
    for key_node, value_node in node.value:
        if type(key_node) is not yaml.ScalarNode:
            continue
        if key_node.value in objects[-1]:
            objects.append({})
        objects[-1][key_node.value] = value_node
    return objects


def _claim(fields: dict[str, yaml.Node]) -> int:
    """How plainly an object says it is a CronTask: its kind counts more than its apiVersion
    (``kind: Note`` then a CronTask's apiVersion is the note's last key, not the note)."""
    said = {field: _str(fields.get(field)) for field in KIND_FIELDS}
    return 2 * claims_ours(None, said["kind"]) + claims_ours(said["apiVersion"], None)


def _str(value: yaml.Node | None) -> str | None:
    return value.value if type(value) is yaml.ScalarNode and value.tag == STR else None


def plain_value(node: yaml.Node, key: str) -> yaml.Node | None:
    """The value of ``key`` in a plain mapping node (the last one, as in PyYAML), or None."""
    if type(node) is not yaml.MappingNode or node.tag != MAP:
        return None
    found: yaml.Node | None = None
    for key_node, value_node in node.value:
        if type(key_node) is yaml.ScalarNode and key_node.value == key:
            found = value_node
    return found


def key_of(data: Any) -> str | None:
    """The task key a broken document still names, if its name and namespace are valid labels
    (an error carries no other user text as its key)."""
    if not isinstance(data, dict):
        return None
    metadata = data.get("metadata")
    if not isinstance(metadata, dict):
        return None
    name, namespace = metadata.get("name"), metadata.get("namespace", "default")
    if _is_label(name) and _is_label(namespace):
        return f"{namespace}/{name}"
    return None


def _is_label(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 63 and _LABEL.fullmatch(value) is not None
