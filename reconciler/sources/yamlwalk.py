"""Bounded walks over a YAML document's node graph.

PyYAML's composer turns an alias into a second reference to the anchored node, so the graph it
returns is as small as the text, but any walk that follows every reference sees the document
*expanded*: nine nested anchors of nine items (500 bytes) expand to 9^9 values. Every walk here is
therefore bounded, in a way that depends only on the text:

- ``plain_document`` builds the data of the common document (string-keyed mappings, sequences,
  scalars) and spends one unit of a budget for each value it builds, and the length of each
  scalar (keys included) from a second budget, of text, alias repeats included; it stops
  (``Exceeded``) when a budget or the depth runs out, without saying where;
- ``measure`` says where: one pass over the nodes as written (each shared node measured once, so
  its cost is that of the text) computes every node's expanded size, text and height, refuses
  cycles, tags that are not YAML's standard ones and scalars that cannot be constructed, and
  raises ``NodeProblem`` at the first node, in the text's order, that breaks a bound.

A document that passes ``measure`` with a budget of N values can be walked by anything
(PyYAML's constructor with its merge keys, pydantic, the positions of its errors) in O(N). The
text budget bounds what no count of values does: one long string repeated by aliases (9 000
aliases of a 32 KiB anchor are 10 000 values, and 288 MiB once the task is serialized).
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from reconciler.sources.limits import Room, excerpt, format_size

STR = "tag:yaml.org,2002:str"
MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"
MERGE = "tag:yaml.org,2002:merge"  # the `<<` key: the constructor merges, never constructs it
_NUMBERS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_TAG_PREFIX = "tag:yaml.org,2002:"
# Standard tags whose values JSON (and so a CronTask, and the API server) has no word for: bytes
# that pydantic would decode into a string, an unordered set that would become a list in a
# different order on every run (command arguments!), ordered pairs. Refused where written.
_NOT_JSON = {_TAG_PREFIX + name: name for name in ("binary", "set", "omap", "pairs")}
_INTERNED_LENGTH = 64


class NotPlain(Exception):
    """The document needs PyYAML's constructor (tags, merge keys, non-string or repeated
    keys)."""


class Exceeded(Exception):
    """A bound was reached while building; ``measure`` tells which and where."""


class NodeProblem(Exception):
    """A node that breaks a bound or cannot be constructed; ``node.start_mark`` is where."""

    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


def plain_document(
    node: yaml.Node, *, values: int, depth: int, number_length: int, text: int
) -> tuple[Any, tuple[int, int]]:
    """The data of a *plain* document built straight from its nodes, and what it used: the
    values it counts and the characters of its scalars (keys included), alias repeats included.

    Mappings with string keys, sequences, and scalars (strings taken as they are, other scalars
    through PyYAML's constructor, so ``10``, ``true`` and ``null`` mean what they always meant):
    the data is what PyYAML's SafeConstructor builds for the same nodes, at a fraction of its
    cost. Raises ``NotPlain`` for anything else (then use ``measure`` and the constructor), and
    ``Exceeded`` when the document counts more than ``values`` values or ``text`` characters,
    is nested deeper than ``depth``, contains itself, or holds a scalar that cannot be
    constructed.
    """
    builder = _PlainBuilder(values - 1, text, number_length)
    data = builder.build(node, depth)
    return data, (values - builder.left, text - builder.text_left)


class _PlainBuilder:
    """``plain_document``'s walk. A class rather than a recursive closure: a closure that calls
    itself is a reference cycle, garbage that only the cyclic collector frees, one per document
    read (10 000 of them in a start-up of 10 000 tasks)."""

    def __init__(self, left: int, text_left: int, number_length: int) -> None:
        self.left = left
        self.text_left = text_left  # characters: each scalar's, every time it is built
        self.number_length = number_length
        self.constructor: yaml.constructor.SafeConstructor | None = None

    def build(self, current: yaml.Node, room: int) -> Any:
        kind = type(current)
        if kind is yaml.ScalarNode:
            value: str = current.value
            # Counted each time an alias repeats it: the data holds one string, but whatever
            # copies or serializes the task (its spec hash, the API, pydantic) holds them all.
            self.text_left -= len(value)
            if self.text_left < 0:
                raise Exceeded
            if current.tag == STR:
                # Short values repeat across tasks (namespaces, zones, commands, images) and
                # the definitions keep them for as long as the tasks live: one copy each.
                return sys.intern(value) if len(value) <= _INTERNED_LENGTH else value
            if current.tag in _NUMBERS and len(value) > self.number_length:
                raise Exceeded
            if current.tag in _NOT_JSON:
                raise NotPlain  # refused, with its place, by measure
            if self.constructor is None:
                self.constructor = yaml.constructor.SafeConstructor()
            try:
                return self.constructor.construct_document(current)
            except Exception:  # a bad timestamp, an int past Python's digit limit, ...
                raise Exceeded from None
        # A cycle (`a: &x [*x]`) never ends by itself: the depth bound stops it.
        if room == 0:
            raise Exceeded
        items = current.value
        if kind is yaml.MappingNode and current.tag == MAP:
            self.left -= 2 * len(items)
            if self.left < 0:
                raise Exceeded
            mapping: dict[str, Any] = {}
            for key_node, value_node in items:
                if type(key_node) is not yaml.ScalarNode or key_node.tag != STR:
                    raise NotPlain  # merge keys (<<), numbers or null as keys
                key = key_node.value
                self.text_left -= len(key)  # checked once the mapping is built
                if key in mapping:
                    raise NotPlain  # reported with its place by the long way
                mapping[key] = self.build(value_node, room - 1)
            if self.text_left < 0:
                raise Exceeded
            return mapping
        if kind is yaml.SequenceNode and current.tag == SEQ:
            self.left -= len(items)
            if self.left < 0:
                raise Exceeded
            return [self.build(item, room - 1) for item in items]
        raise NotPlain  # an explicit tag such as !!set or !!omap


def measure(
    root: yaml.Node,
    *,
    room: Room,
    depth: int,
    number_length: int,
) -> tuple[int, int]:
    """How many values ``root`` counts with its aliases expanded, and how many characters its
    scalars (keys included) hold; raises ``NodeProblem``.

    Iterative, and each node is measured once however often aliases repeat it: the cost is
    that of the text. Checks, in the text's order: a node that contains itself, a tag outside
    YAML's standard ones (``!!python/object`` and other application tags: the documents are
    data, never code), a scalar that cannot be constructed, then that no node counts more than
    ``room.values`` values, nests deeper than ``depth``, or holds more than ``room.text``
    characters (``room.bound`` and ``room.text_bound`` say whose limits those are).
    """
    values, bound, text = room.values, room.bound, room.text
    sizes: dict[int, int] = {}  # id(node) -> values it counts, itself included
    texts: dict[int, int] = {}  # id(node) -> characters of the scalars it holds, expanded
    heights: dict[int, int] = {}  # id(node) -> nesting below it (0 for a scalar)
    on_path: set[int] = set()
    repeats = False  # whether an alias repeats a node: the wording of the size problem
    constructors = yaml.constructor.SafeConstructor.yaml_constructors
    constructor = yaml.constructor.SafeConstructor()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            on_path.discard(key)
            children = _children(node)
            size = 1 + sum(sizes[id(child)] for child in children)
            height = 1 + max((heights[id(child)] for child in children), default=0)
            length = sum(texts[id(child)] for child in children)
            if height > depth:
                raise NodeProblem(node, f"nested more than {depth} levels deep (the limit)")
            if size > values:
                raise NodeProblem(node, _too_many(values, repeats, bound))
            if length > text:
                raise NodeProblem(node, _too_much_text(text, repeats, room.text_bound))
            sizes[key], heights[key], texts[key] = size, height, length
            continue
        if key in sizes:
            repeats = True
            continue
        if key in on_path:
            raise NodeProblem(node, "recursive YAML alias: this value contains itself")
        # The values written in the text bound the expanded size from below: stop measuring
        # as soon as they alone are too many, so that this walk costs O(values), not O(text).
        if len(sizes) + len(on_path) >= values:
            raise NodeProblem(node, _too_many(values, False, bound))
        if node.tag not in constructors and node.tag != MERGE:
            raise NodeProblem(node, f"unsupported YAML tag {excerpt(_short(node.tag))!r}")
        if node.tag in _NOT_JSON:
            raise NodeProblem(
                node,
                f"YAML tag '!!{_NOT_JSON[node.tag]}' has no JSON value: write a string or a list",
            )
        if isinstance(node, yaml.ScalarNode):
            _check_scalar(node, constructor, number_length)
            # One scalar alone, as written: in a file allowed past 1 MiB, or at the end of a
            # file's budget.
            if len(node.value) > text:
                raise NodeProblem(node, _too_much_text(text, False, room.text_bound))
            sizes[key], heights[key], texts[key] = 1, 0, len(node.value)
            continue
        children = _children(node)
        if len(children) >= values:
            raise NodeProblem(node, _too_many(values, False, bound))
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(children))
    return sizes[id(root)], texts[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return list(node.value)


def _check_scalar(
    node: yaml.ScalarNode, constructor: yaml.constructor.SafeConstructor, number_length: int
) -> None:
    if node.tag in (STR, MERGE):
        return
    if node.tag in _NUMBERS and len(node.value) > number_length:
        raise NodeProblem(node, f"number longer than {number_length} characters")
    try:
        constructor.construct_document(node)
    except Exception as err:
        problem = err.problem if isinstance(err, yaml.MarkedYAMLError) else str(err)
        raise NodeProblem(
            node, f"invalid {_short(node.tag)} value: {excerpt(problem or type(err).__name__)}"
        ) from None


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG_PREFIX) if tag.startswith(_TAG_PREFIX) else tag


def _too_many(values: int, repeats: bool, bound: str) -> str:
    if repeats:
        return (
            f"YAML aliases expand this value to more than {values} values ({bound}: an alias bomb?)"
        )
    return f"more than {values} values in one document ({bound})"  # as written, no alias


def _too_much_text(text: int, repeats: bool, bound: str) -> str:
    size = format_size(text)
    if repeats:
        return (
            f"YAML aliases expand this value to more than {size} of text ({bound}; "
            "a Kubernetes object is at most 1.5 MiB)"
        )
    return f"more than {size} of text in one document ({bound})"  # as written, no alias


def prescan(
    text: str, loader: type[yaml.SafeLoader], *, documents: int, values: int, depth: int
) -> tuple[yaml.Mark, str] | None:
    """The first bound a long text breaks, found from its events alone, or None.

    PyYAML's composer keeps a document's whole node graph (some 300 bytes per value), so a
    megabyte of ``[1,1,1,...]`` would cost 150 MB before any bound is checked. Events are
    dropped as soon as they are counted: this pass costs no memory, stops at the first value
    past a bound, and leaves every document it lets through at most ``values`` values as
    written (aliases count one here; ``measure`` counts their expansion). A syntax error ends
    it quietly: the reading proper reports it, with the errors of the documents before it.
    """
    parser = loader(text)
    try:
        count = nesting = seen = 0
        while parser.check_event():
            event = parser.get_event()  # type: ignore[no-untyped-call]
            kind = type(event)
            if kind is yaml.DocumentStartEvent:
                seen, count = seen + 1, 0
                if seen > documents:
                    return event.start_mark, too_many_documents(documents)
            elif kind is yaml.ScalarEvent or kind is yaml.AliasEvent:
                count += 1
            elif kind is yaml.SequenceStartEvent or kind is yaml.MappingStartEvent:
                count, nesting = count + 1, nesting + 1
                if nesting > depth:
                    return event.start_mark, f"nested more than {depth} levels deep (the limit)"
            elif kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
                nesting -= 1
            if count > values:
                return event.start_mark, _too_many(values, False, "the limit for one document")
    except yaml.YAMLError:
        return None
    finally:
        parser.dispose()
    return None


def too_many_documents(documents: int) -> str:
    return f"more than {documents} YAML documents in one file (the limit)"
