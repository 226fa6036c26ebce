"""From YAML text to CronTask definitions, with the place of every error.

Multi-document text (``---``) is read like ``kubectl apply -f``. Documents of other API groups
(a Deployment next to the CronTasks) are counted and ignored; a document that claims the
``crontask.dev`` group, or names no group at all, must be a valid CronTask.

Positions come from the YAML node tree, so a pydantic error such as ``spec.timeZone: unknown
time zone`` is reported at the line and column of ``timeZone:`` in the file. libyaml's C parser
is used when PyYAML was built with it (it is several times faster and keeps the same marks).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from reconciler.core.desired import Definition, DefinitionError, Location
from reconciler.core.model import API_GROUP, DNS1123_LABEL, CronTask
from reconciler.core.schedule import ScheduleError

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path = tuple[str | int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedText:
    definitions: list[Definition]
    errors: list[DefinitionError]
    ignored: int = 0  # documents of other API groups


@dataclasses.dataclass(frozen=True, slots=True)
class _Mark:
    line: int  # 1-based
    column: int  # 1-based
    plain_scalar: bool = False  # unquoted, single line: a column inside it can be pointed at
    quoted: bool = False


class _Positions:
    """Where each key and value of one document starts."""

    def __init__(self, root: yaml.Node) -> None:
        self.marks: dict[Path, _Mark] = {}
        self.values: dict[Path, _Mark] = {}
        self.duplicates: list[tuple[Path, _Mark]] = []
        self.root = _mark(root)
        self._walk(root, ())

    def _walk(self, node: yaml.Node, path: Path) -> None:
        self.values[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = (*path, key)
                if key in seen:
                    # PyYAML keeps the last of two equal keys without a word; say so instead.
                    self.duplicates.append((child, _mark(key_node)))
                seen.add(key)
                self.marks[child] = _mark(key_node)
                self._walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = (*path, index)
                self.marks[child] = _mark(item)
                self._walk(item, child)

    def find(self, path: Sequence[str | int]) -> _Mark:
        """The key of ``path``, or of its nearest ancestor that exists in the text."""
        probe = tuple(path)
        while probe:
            if probe in self.marks:
                return self.marks[probe]
            probe = probe[:-1]
        return self.root


def _mark(node: yaml.Node) -> _Mark:
    start, end = node.start_mark, node.end_mark
    style = getattr(node, "style", None)
    single_line = start.line == end.line
    return _Mark(
        line=start.line + 1,
        column=start.column + 1,
        # A plain scalar's style is None from PyYAML's Python composer, "" from libyaml's.
        plain_scalar=isinstance(node, yaml.ScalarNode) and not style and single_line,
        quoted=isinstance(node, yaml.ScalarNode) and style in ("'", '"') and single_line,
    )


def parse_text(
    text: str, path: str, *, source: str = "file", revision: str | None = None
) -> ParsedText:
    """Every CronTask in ``text`` (the contents of ``path``), or the reasons they are not.

    Never raises for bad input: a YAML syntax error is one error at its position, and stops
    the reading of the rest of the text (as the parser cannot resynchronise).
    """

    def at(line: int, column: int) -> Location:
        return Location(source, path, line, column, revision)

    definitions: list[Definition] = []
    errors: list[DefinitionError] = []
    ignored = 0
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            # Positions are needed only to report an error: the common, valid document is
            # built without them (see _plain_document); anything unusual takes the long way.
            try:
                data, plain = _plain_document(node)
                positions: _Positions | None = None
                if not plain:
                    _refuse_cycles(node)
                    positions = _Positions(node)
                    data = loader.construct_document(node)
            except _Recursive as cycle:
                # An alias inside its own anchor (`a: &x [*x]`) has no finite value.
                mark = cycle.node.start_mark
                errors.append(
                    DefinitionError(
                        at(mark.line + 1, mark.column + 1),
                        "recursive YAML alias: this value contains itself",
                    )
                )
                continue
            except RecursionError:
                root = node.start_mark
                errors.append(
                    DefinitionError(
                        at(root.line + 1, root.column + 1), "document is nested too deeply"
                    )
                )
                continue
            if data is None:  # an empty document between two `---`
                continue
            if _other_group(data):
                ignored += 1
                continue
            for dup_path, mark in positions.duplicates if positions else ():
                errors.append(
                    DefinitionError(
                        at(mark.line, mark.column),
                        f"{_dotted(dup_path)}: duplicate key",
                        _key_of(data),
                    )
                )
            if positions is not None and positions.duplicates:
                continue
            try:
                task = CronTask.model_validate(data)
            except ValidationError as err:
                positions = positions or _Positions(node)
                errors.extend(_validation_errors(err, positions, at, _key_of(data)))
                continue
            root = node.start_mark
            definitions.append(Definition.of(task, at(root.line + 1, root.column + 1)))
    except yaml.MarkedYAMLError as err:
        where = err.problem_mark or err.context_mark
        line, column = (where.line + 1, where.column + 1) if where else (1, 1)
        problem = err.problem or err.context or "invalid YAML"
        errors.append(DefinitionError(at(line, column), f"YAML syntax error: {problem}"))
    except yaml.YAMLError as err:  # e.g. a reader error on a control character
        errors.append(DefinitionError(at(1, 1), f"YAML error: {err}"))
    finally:
        loader.dispose()
    return ParsedText(definitions, errors, ignored)


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class _NotPlain(Exception):
    """The document needs PyYAML's constructor (tags, merge keys, non-string keys)."""


class _Recursive(Exception):
    """A node that contains itself through an alias."""

    def __init__(self, node: yaml.Node) -> None:
        super().__init__("recursive alias")
        self.node = node


def _refuse_cycles(root: yaml.Node) -> None:
    """Raise _Recursive if a node is its own descendant. Iterative: a cycle, or very deep
    nesting, must not exhaust the stack of the thread reading the file."""
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            continue
        if isinstance(node, yaml.ScalarNode):
            continue
        if id(node) in on_path:
            raise _Recursive(node)
        on_path.add(id(node))
        stack.append((node, True))
        children = (
            [item for pair in node.value for item in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        stack.extend((child, False) for child in reversed(children))


def _plain_document(node: yaml.Node) -> tuple[Any, bool]:
    """Build the data of a *plain* document straight from its nodes: mappings with string
    keys, sequences, and scalars (strings taken as they are, other scalars through PyYAML's
    constructor, so ``10``, ``true`` and ``null`` mean what they always meant).

    Returns ``(data, True)``, or ``(None, False)`` when the document is not plain or repeats a
    key: then it goes through ``construct_document`` and ``_Positions``, which report duplicate
    keys with their place. The data is what PyYAML's SafeConstructor builds for the same nodes,
    at a fraction of its cost (no per-node generators and bookkeeping).
    """
    active: set[int] = set()
    constructor = yaml.constructor.SafeConstructor()

    def build(current: yaml.Node) -> Any:
        kind = type(current)
        if kind is yaml.ScalarNode:
            if current.tag == _STR:
                return current.value
            return constructor.construct_document(current)
        if id(current) in active:
            raise _Recursive(current)
        active.add(id(current))
        try:
            if kind is yaml.MappingNode and current.tag == _MAP:
                mapping: dict[str, Any] = {}
                for key_node, value_node in current.value:
                    if type(key_node) is not yaml.ScalarNode or key_node.tag != _STR:
                        raise _NotPlain  # merge keys (<<), numbers or null as keys
                    key = key_node.value
                    if key in mapping:
                        raise _NotPlain  # reported with positions by the long way
                    mapping[key] = build(value_node)
                return mapping
            if kind is yaml.SequenceNode and current.tag == _SEQ:
                return [build(item) for item in current.value]
            raise _NotPlain  # an explicit tag such as !!set or !!omap
        finally:
            active.discard(id(current))

    try:
        data = build(node)
    except _NotPlain:
        return None, False
    return data, True


def _other_group(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    api_version = data.get("apiVersion")
    if not isinstance(api_version, str) or not api_version:
        return False
    group = api_version.rpartition("/")[0]
    return group != API_GROUP


def _key_of(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    metadata = data.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        return None
    namespace = metadata.get("namespace", "default")
    return f"{namespace}/{metadata['name']}" if isinstance(namespace, str) else None


def _validation_errors(
    err: ValidationError, positions: _Positions, at: Any, key: str | None
) -> list[DefinitionError]:
    found: list[DefinitionError] = []
    for item in err.errors(include_url=False):
        loc = tuple(item["loc"])
        mark = positions.find(loc)
        column = mark.column
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, ScheduleError) and cause.column is not None:
            value = positions.values.get(loc)
            if value is not None and (value.plain_scalar or value.quoted):
                # Point at the offending field inside the expression, not at the key.
                return_line = value.line
                column = value.column + cause.column + (1 if value.quoted else 0)
                found.append(DefinitionError(at(return_line, column), _message(loc, item), key))
                continue
        found.append(DefinitionError(at(mark.line, column), _message(loc, item), key))
    return found


def _message(loc: tuple[str | int, ...], item: Any) -> str:
    kind = item["type"]
    if kind == "extra_forbidden":
        text = "unknown field" + _suggestion(loc)
    elif kind == "missing":
        text = "required field is missing"
    elif (
        kind == "string_pattern_mismatch"
        and (item.get("ctx") or {}).get("pattern") == DNS1123_LABEL
    ):
        text = (
            f"{item['input']!r} is not a DNS-1123 label (lower-case letters, digits and '-', "
            "starting and ending with a letter or digit)"
        )
    else:
        text = str(item["msg"]).removeprefix("Value error, ")
    where = _dotted(loc)
    return f"{where}: {text}" if where else text


def _suggestion(loc: tuple[str | int, ...]) -> str:
    """`` (did you mean 'retry'?)`` for a misspelt field, when one is close enough."""
    model: Any = CronTask
    for part in loc[:-1]:
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            return ""
        candidates = [field.annotation, *getattr(field.annotation, "__args__", ())]
        model = next(
            (c for c in candidates if isinstance(c, type) and hasattr(c, "model_fields")), None
        )
        if model is None:
            return ""
    names = [f.alias or n for n, f in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
