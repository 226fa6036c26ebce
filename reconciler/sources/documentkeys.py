"""The task key a broken CronTask document still names (``documents``), read from its data or,
for a document that cannot be built or repeats keys, from its YAML nodes.

A CronTask run together with another object (``cat task.yaml configmap.yaml``, no ``---``)
holds two objects' keys in one mapping. Its errors are named after the CronTask's own
``metadata``. The keys are split into objects where a key repeats within the current one (how
the files were concatenated); the object that says most plainly it is a CronTask (its kind,
then its apiVersion; the first object if none says so) names the task, and with no
``metadata`` of its own nothing does (never the other object's name). A repeated key only
bounds where the next object starts: it may start a few header keys (``apiVersion``, ``kind``,
``metadata``) earlier. The start chosen is the one where both objects keep their header keys
before their other keys, then ``metadata`` after ``apiVersion`` and ``kind`` (as Kubernetes
writes objects): ``spec, metadata, apiVersion: v1`` ends a CronTask at its ``spec`` and starts
a ConfigMap at its ``metadata``. A key whose object still cannot be told names nothing.

The same holds when only ``metadata`` repeats (a lone ``metadata`` block run on after a task):
PyYAML's rule, the last one, named the task after the stray block, kept a task of that name
and removed the CronTask. ``objects_note`` says on which lines such objects start.

A document is split once (``split_objects``), whatever the number of its errors: its task key
(``key_of_split``) and its note are read from that one ``Split``.

A ``namespace`` that is present but not a string (``1``, ``null``, ``yes``) names no task.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import yaml

from reconciler.core.model import KIND
from reconciler.core.runs import DNS1123_LABEL
from reconciler.sources.yamlwalk import MAP, STR

KIND_FIELDS = ("apiVersion", "kind")
HEADER = ("apiVersion", "kind", "metadata")
_LABEL = re.compile(DNS1123_LABEL)
_SHOWN = 4  # the lines of objects a message names at most
Keys = list[tuple[yaml.ScalarNode, yaml.Node]]  # a mapping's scalar keys and their values
Object = dict[str, tuple[yaml.ScalarNode, yaml.Node]]  # one object's keys, by name


@dataclasses.dataclass(frozen=True, slots=True)
class Split:
    """A document's keys split into objects (``split_objects``): what its key and the note of
    its errors are read from, however many errors it has."""

    keys: list[yaml.ScalarNode]  # the plain mapping's scalar keys, in order
    objects: list[Object]  # no key repeats within one (see ``_cuts``)
    starts: list[int]  # each object's first key, in ``keys``
    cuts: list[int]  # where a key repeats (``_cuts``): an object starts there at the latest


def claims_ours(api_version: Any, kind: Any) -> bool:
    """Whether an object says it is a CronTask, by its kind or by an apiVersion like ours."""
    return (isinstance(kind, str) and kind.lower() == KIND.lower()) or (
        isinstance(api_version, str) and api_version.lower().startswith("crontask")
    )


def key_of_node(node: yaml.Node) -> str | None:
    """``key_of_split`` of a document with one error (split for it alone)."""
    return key_of_split(split_objects(node))


def key_of_split(split: Split) -> str | None:
    """The task key a document that cannot be built, or repeats keys, still names in plain
    ``metadata``: of objects run together, the CronTask's own (see the module docstring)."""
    if not split.objects:
        return None
    index = _task_index(split.objects)
    metadata = split.objects[index].get("metadata")
    if metadata is None or _shifted_in(split, index, metadata[0]):
        return None
    names = {}
    for field in ("name", "namespace"):
        value = plain_value(metadata[1], field)
        if value is None:
            continue
        if not (isinstance(value, yaml.ScalarNode) and value.tag == STR):
            return None  # a namespace of 1 is no namespace, and not the default one
        names[field] = value.value
    return key_of({"metadata": names}) if "name" in names else None


def objects_note(split: Split) -> str | None:
    """Where the objects run together in a document start, and which is the CronTask, for the
    message of a repeated key; None when one object repeats a field of its own (no object
    besides the CronTask's has a header key)."""
    objects = split.objects
    if len(objects) < 2:
        return None
    task = _task_index(objects)
    if not any(set(HEADER) & o.keys() for i, o in enumerate(objects) if i != task):
        return None
    lines = [min(k.start_mark.line for k, _ in o.values()) + 1 for o in objects]
    shown = ", ".join(map(str, lines[:-1])) + f" and {lines[-1]}"
    if len(lines) > _SHOWN:  # a message stays one short line, whatever the document
        shown = ", ".join(map(str, lines[: _SHOWN - 1])) + f" and {len(lines) - _SHOWN + 1} more"
    return (
        f"objects at lines {shown} run together, no '---' between them:"
        f" the CronTask is the one at line {lines[task]}"
    )


def _task_index(objects: list[Object]) -> int:
    """Which object is the CronTask: the strongest claim, the last of equal ones (as PyYAML's
    data); the first object when none claims (a document is ours without an apiVersion)."""
    best = (0, 0)  # the strongest claim so far, its object
    for index, fields in enumerate(objects):
        strength = _claim(fields)
        if strength and strength >= best[0]:
            best = (strength, index)
    return best[1]


def split_objects(node: yaml.Node) -> Split:
    """The keys of a plain mapping node split into objects (see the module docstring); keys
    whose object cannot be told belong to none. One object when no key repeats; none when the
    node is no plain mapping."""
    if type(node) is not yaml.MappingNode or node.tag != MAP:
        return Split([], [], [], [])
    keys: Keys = [(k, v) for k, v in node.value if type(k) is yaml.ScalarNode]
    names = [k.value for k, _ in keys]
    cuts = _cuts(names)
    bounds = [0, *cuts, len(names)]
    starts, ends = [0], []  # each object's first key, and the key after its last
    for j in range(1, len(bounds) - 1):
        low, high = _start_range(names, bounds[j - 1], bounds[j], bounds[j + 1])
        ends.append(low)
        starts.append(high)
    ends.append(len(names))
    objects = [{k.value: (k, v) for k, v in keys[s:e]} for s, e in zip(starts, ends, strict=True)]
    return Split([k for k, _ in keys], objects, starts, cuts)


def _cuts(names: list[str]) -> list[int]:
    """Where a key repeats within the object it would belong to: an object starts there at the
    latest (``cat a.yaml b.yaml`` puts b's keys after a's)."""
    cuts: list[int] = []
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            cuts.append(index)
            seen = set()
        seen.add(name)
    return cuts


def _start_range(names: list[str], before: int, cut: int, after: int) -> tuple[int, int]:
    """The first and last key at which the object whose key repeats at ``cut`` may start (the
    keys between belong to neither object): as early as the header keys before ``cut`` allow,
    at the place where the objects look most like Kubernetes objects (``_disorder``)."""
    following = set(names[cut:after])
    if not following & set(HEADER):  # one object repeating a field of its own ([spec] after it)
        return cut, cut
    low = cut
    while low - 1 > before and names[low - 1] in HEADER and names[low - 1] not in following:
        low -= 1
    if low == cut:
        return cut, cut

    def score(start: int) -> tuple[int, int]:
        ended, started = _disorder(names[before:start]), _disorder(names[start:after])
        return ended[0] + started[0], ended[1] + started[1]

    scores = {start: score(start) for start in range(low, cut + 1)}
    best = min(scores.values())
    chosen = [start for start, score in scores.items() if score == best]
    return chosen[0], chosen[-1]


def _shifted_in(split: Split, task: int, metadata: yaml.ScalarNode) -> bool:
    """Whether the ``metadata`` of the task (object ``task``) is one ``split_objects`` moved
    into it from the object before (it sits before the key that repeated, where the task was
    moved to start): a ``metadata`` may leave a CronTask for the next object, never come into
    one, which would then be named after another object."""
    first = split.starts[task]  # no key repeats within an object: its first is its start
    cut = next((c for c in split.cuts if c >= first), len(split.keys))
    return first > 0 and any(key is metadata for key in split.keys[first:cut])


def _disorder(names: list[str]) -> tuple[int, int]:
    """How far one object's key order is from Kubernetes': a header key after another key
    (worst: a ``spec`` ends an object), then ``metadata`` before ``apiVersion`` or ``kind``."""
    late_header = metadata_first = body = metadata = False
    for name in names:
        if name not in HEADER:
            body = True
            continue
        late_header = late_header or body
        if name == "metadata":
            metadata = True
        else:
            metadata_first = metadata_first or metadata
    return int(late_header), int(metadata_first)


def _claim(fields: Object) -> int:
    """How plainly an object says it is a CronTask: its kind counts more than its apiVersion
    (``kind: Note`` then a CronTask's apiVersion is the note's last key, not the note)."""
    said = {field: _str(fields.get(field)) for field in KIND_FIELDS}
    return 2 * claims_ours(None, said["kind"]) + claims_ours(said["apiVersion"], None)


def _str(field: tuple[yaml.ScalarNode, yaml.Node] | None) -> str | None:
    value = field[1] if field else None
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
