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

A ``namespace`` with no value (``namespace:``, ``~``, ``null``) is the default one, as the model
reads it (``core.fields``: the default applies); one present but not a string (``1``, ``yes``)
names no task.

A document with a YAML syntax error is never built: the parser stops at the error. Its key is
read from the parse events of that document before the error (``key_before_error``), within
the bounds of the reading, and only when it said there, plainly, that it is a CronTask and what
its whole ``metadata`` is (no key after the error could change them): a task moved to another
file and broken in the same change is kept by a syntax error as by any other error.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import yaml

from reconciler.core.model import KIND
from reconciler.core.runs import DNS1123_LABEL
from reconciler.sources.limits import YamlLimits
from reconciler.sources.yamlpositions import Lines
from reconciler.sources.yamlwalk import MAP, MERGE, STR

NULL = "tag:yaml.org,2002:null"  # an empty value: its field left out, as the model reads it

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
        if value is None or (isinstance(value, yaml.ScalarNode) and value.tag == NULL):
            continue
        if not (isinstance(value, yaml.ScalarNode) and value.tag == STR):
            return None  # a namespace of 1 is no namespace, and not the default one
        names[field] = value.value
    return key_of({"metadata": names}) if "name" in names else None


def objects_note(split: Split, lines: Lines) -> str | None:
    """Where the objects run together in a document start (placed by ``lines``, the text's, as
    the message's own place is), and which is the CronTask, for the message of a repeated key;
    None when one object repeats a field of its own (no object besides the CronTask's has a
    header key)."""
    objects = split.objects
    if len(objects) < 2:
        return None
    task = _task_index(objects)
    if not any(set(HEADER) & o.keys() for i, o in enumerate(objects) if i != task):
        return None
    starts = [min(lines.place(k.start_mark)[0] for k, _ in o.values()) for o in objects]
    shown = ", ".join(map(str, starts[:-1])) + f" and {starts[-1]}"
    if len(starts) > _SHOWN:  # a message stays one short line, whatever the document
        shown = ", ".join(map(str, starts[: _SHOWN - 1])) + f" and {len(starts) - _SHOWN + 1} more"
    return (
        f"objects at lines {shown} run together, no '---' between them:"
        f" the CronTask is the one at line {starts[task]}"
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
    name, namespace = metadata.get("name"), metadata.get("namespace")
    namespace = "default" if namespace is None else namespace  # empty: the default (model)
    if _is_label(name) and _is_label(namespace):
        return f"{namespace}/{name}"
    return None


def _is_label(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 63 and _LABEL.fullmatch(value) is not None


_NAMES = (("metadata", "name"), ("metadata", "namespace"))
_SCALARS = (("apiVersion",), ("kind",), *_NAMES)  # the fields a broken document is named by
_LONGEST = 253  # characters of a field worth reading: a name, a namespace, an apiVersion
_IMPLICIT = (None, "!")  # tags the resolver decides, as PyYAML's composer does
_NOT_PLAIN = object()  # a field present, but not plainly a string (an alias, a mapping, a number)


def key_before_error(
    text: str, mark: yaml.Mark, loader: type[yaml.SafeLoader], limits: YamlLimits
) -> str | None:
    """The task key the document a YAML error at ``mark`` is in names before the error, read
    from the parse events of ``text`` (never built, so no alias is expanded), or None.

    The bounds are the reading's: no more than ``limits.max_documents`` documents, and the
    document no more than ``limits.max_values`` values or ``limits.max_depth`` deep before the
    error. The document is the one started and not ended when the parser met the error (an
    error between two documents is none's); a composer's error (an undefined alias) is met
    by no parser, so events from ``mark`` on are not read."""
    parser = loader(text)
    header: _Header | None = None
    documents = 0
    try:
        while parser.check_event():
            event = parser.get_event()  # type: ignore[no-untyped-call]
            if event.start_mark.index >= mark.index:
                break
            if type(event) is yaml.DocumentStartEvent:
                documents += 1
                if documents > limits.max_documents:
                    return None
                header = _Header(parser, limits)
            elif type(event) is yaml.DocumentEndEvent:
                header = None
            elif header is not None:
                header.take(event)
    except yaml.YAMLError:
        pass  # the error itself, met again: the events before it are all there is
    finally:
        parser.dispose()
    return header.key() if header is not None else None


@dataclasses.dataclass(slots=True)
class _Open:
    """A collection open at a place of a document's events: its field path when it is the
    document or its ``metadata`` (None: a place no key is read from), and what comes next."""

    path: tuple[str, ...] | None
    mapping: bool
    key_next: bool = True
    key: str | None = None  # the key whose value comes next


class _Header:
    """What one document says of itself in its events, as they come (``key_before_error``):
    its ``apiVersion``, ``kind``, ``metadata.name`` and ``metadata.namespace``, and whether its
    ``metadata`` ended. Anything that could make a full read say otherwise (a repeated key of
    the document or of those fields, an alias or merge key where they are read, a bound) reads
    nothing more: the document names no task."""

    def __init__(self, resolver: yaml.resolver.BaseResolver, limits: YamlLimits) -> None:
        self._resolver = resolver
        self._limits = limits
        self._open: list[_Open] = []
        self._seen: set[tuple[str, ...]] = set()  # the document's keys, and metadata's read
        self.fields: dict[tuple[str, ...], object] = {}
        self.metadata_ended = False
        self.values = 0
        self.gave_up = False  # nothing more is read: the document names nothing

    def take(self, event: yaml.Event) -> None:
        ends = type(event) in (yaml.MappingEndEvent, yaml.SequenceEndEvent)
        self.values += not ends  # a value: a scalar, an alias, a collection (as ``prescan``)
        self.gave_up = self.gave_up or self.values > self._limits.max_values
        if self.gave_up:
            return
        if ends:
            if self._open.pop().path == ("metadata",):
                self.metadata_ended = True
            self._ended()
            return
        starts = type(event) in (yaml.MappingStartEvent, yaml.SequenceStartEvent)
        if not self._open:  # the document itself: a plain mapping, or it names nothing
            self.gave_up = not self._plain_mapping(event)
            self._open.append(_Open((), True))
            return
        place, opened = self._open[-1], False
        if place.path is not None and place.mapping and place.key_next:
            self._key(place, event)
        elif place.path is not None and place.mapping and place.key is not None:
            opened = self._value((*place.path, place.key), event)
        if starts and not opened:  # a collection no key is read from
            self._open.append(_Open(None, type(event) is yaml.MappingStartEvent))
        if starts:
            self.gave_up = self.gave_up or len(self._open) > self._limits.max_depth
        else:
            self._ended()

    def _key(self, place: _Open, event: yaml.Event) -> None:
        if type(event) is yaml.AliasEvent:
            self.gave_up = True  # it could be any key: "metadata", "name"
            return
        name = self._string(event) if type(event) is yaml.ScalarEvent else None
        if type(event) is yaml.ScalarEvent and self._tag(event) == MERGE:
            self.gave_up = True  # fields from elsewhere
            return
        path = (*place.path, name) if place.path is not None and name is not None else None
        place.key = name if place.path == () or path in _NAMES else None
        if path is not None and place.key is not None:
            self.gave_up = self.gave_up or path in self._seen  # objects run together
            self._seen.add(path)

    def _value(self, path: tuple[str, ...], event: yaml.Event) -> bool:
        """Read the value at ``path``; whether it opened a collection read from (metadata)."""
        if path == ("metadata",):
            self.gave_up = not self._plain_mapping(event)  # no plain metadata, no name
            if not self.gave_up:
                self._open.append(_Open(path, True))
            return not self.gave_up
        if path in _SCALARS:
            if type(event) is yaml.ScalarEvent and self._tag(event) == NULL:
                return False  # an empty value: as if the field were left out
            name = self._string(event) if type(event) is yaml.ScalarEvent else None
            self.fields[path] = _NOT_PLAIN if name is None else name
        return False

    def _ended(self) -> None:
        """A node of the innermost open collection ended: a mapping's key or value is next."""
        if self._open and self._open[-1].mapping:
            place = self._open[-1]
            place.key_next = not place.key_next

    def _plain_mapping(self, event: yaml.Event) -> bool:
        return type(event) is yaml.MappingStartEvent and event.tag in (*_IMPLICIT, MAP)

    def _tag(self, event: yaml.ScalarEvent) -> str | None:
        if event.tag not in _IMPLICIT:
            return event.tag
        if len(event.value) > _LONGEST:
            return None  # not resolved, and not read (a label is at most 63 characters)
        tag: str = self._resolver.resolve(  # type: ignore[no-untyped-call]
            yaml.ScalarNode, event.value, event.implicit
        )
        return tag

    def _string(self, event: yaml.ScalarEvent) -> str | None:
        return event.value if self._tag(event) == STR else None

    def key(self) -> str | None:
        """The key the document names: None unless it said it is a CronTask and its metadata
        ended before the error, with a name and any namespace plainly strings."""
        if self.gave_up or not self.metadata_ended:
            return None
        said = [self.fields.get(field) for field in _SCALARS]
        if _NOT_PLAIN in said[2:] or not claims_ours(*said[:2]):
            return None
        metadata = {
            path[1]: value
            for path, value in zip(_NAMES, said[2:], strict=True)
            if value is not None
        }
        return key_of({"metadata": metadata})
