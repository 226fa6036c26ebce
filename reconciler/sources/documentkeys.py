"""The task key a broken CronTask document still names (``documents``), read from its data or,
for a document that cannot be built or repeats keys, from its YAML nodes.

A CronTask run together with another object (``cat task.yaml notes.yaml``, no ``---``) holds
two ``metadata``; its errors are named after the CronTask's: the first ``metadata`` after the
last ``apiVersion`` or ``kind`` that says it is a CronTask (the last one before it when none
follows). PyYAML's rule, the last ``metadata``, named them after the other object whenever it
came second, as an object without an ``apiVersion`` (``kind: Note``, a ``metadata`` alone)
does; the task it names was kept, the CronTask removed.
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


def key_of_node(node: yaml.Node) -> str | None:
    """The task key a document that cannot be built, or repeats keys, still names in plain
    ``metadata``: the CronTask's own when it holds more than one (see the module docstring)."""
    metadata = _task_metadata(node)
    if metadata is None:
        return None
    names = {}
    for field in ("name", "namespace"):
        value = plain_value(metadata, field)
        if isinstance(value, yaml.ScalarNode) and value.tag == STR:
            names[field] = value.value
    return key_of({"metadata": names}) if "name" in names else None


def _task_metadata(node: yaml.Node) -> yaml.Node | None:
    """The ``metadata`` of the CronTask in a plain mapping node (see the module docstring)."""
    if type(node) is not yaml.MappingNode or node.tag != MAP:
        return None
    claim = -1  # the place of the last apiVersion or kind that says it is a CronTask
    found: list[tuple[int, yaml.Node]] = []  # each metadata, with its place
    for place, (key_node, value_node) in enumerate(node.value):
        if type(key_node) is not yaml.ScalarNode:
            continue
        if key_node.value == "metadata":
            found.append((place, value_node))
        elif key_node.value in KIND_FIELDS and _says_ours(key_node.value, value_node):
            claim = place
    after = [value for place, value in found if place > claim]
    before = [value for place, value in found if place < claim]
    return after[0] if after else before[-1] if before else None


def _says_ours(field: str, value: yaml.Node) -> bool:
    said = value.value if type(value) is yaml.ScalarNode and value.tag == STR else None
    return claims_ours(said, None) if field == "apiVersion" else claims_ours(None, said)


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
