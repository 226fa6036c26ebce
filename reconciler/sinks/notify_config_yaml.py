"""The ``--notifications`` file's YAML: plain data with the place of each value in the text, and
the errors of that data said at those places.

Contract:

- :func:`read_yaml` turns the text into plain data (mappings with string keys, lists, scalars)
  and a :class:`Builder` that holds the ``line:col`` of each value and each key by its path. It
  raises :class:`NotificationConfigError`, ``file:line:col: problem``, for text that is not
  YAML, an empty file, a key that is not a string or is given twice, a tag, a scalar that
  cannot be read, and a file of more than :data:`MAX_VALUES` values (an alias counted each
  time it is used) or nested deeper than :data:`MAX_DEPTH`. What an alias repeats is placed
  where the alias stands: that is the place of that occurrence. A merge key (``<<``) is read
  as YAML's merge key type says (yaml.org/type/merge.html), and as PyYAML's constructor read
  it up to 6.0.3: the mapping's own keys win, then the first mapping merged that has the key
  (PyYAML 6.0.4 lets the last of ``<<: [*a, *b]`` win for a key of two characters or more,
  yaml/pyyaml#953, and so may read a task's file otherwise). A merge of what is no mapping,
  or of a mapping into itself, is an error at its place. What a merge brings counts in the
  bound as an alias does (each key each time); merges of merges are nested no deeper than
  :data:`MAX_DEPTH`.
- :func:`describe` says pydantic's errors of that data, the first 20, one line each,
  ``file:line:col: field.path: message``, at the field, or at the nearest value around it that
  is written (:func:`nearest`: a missing field is said at the mapping that lacks it).
"""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import yaml
from pydantic import ValidationError

from reconciler.core.model import label_slip
from reconciler.core.runs import DNS1123_LABEL

MAX_VALUES: Final = 10_000
MAX_DEPTH: Final = 20
MERGE: Final = "tag:yaml.org,2002:merge"  # the ``<<`` key's tag

Mark = tuple[int, int]  # 1-based line and column
# Where an alias (``*a``) stands: (id of the collection node holding it, its index in a
# sequence or the id of its key node in a mapping) -> the alias's mark.
Aliases = dict[tuple[int, int], Mark]


class NotificationConfigError(ValueError):
    """The file cannot be used; each line of the message is ``file:line:col: problem``."""


class _Loader(yaml.SafeLoader):
    """The safe loader, remembering where each alias stands: PyYAML composes ``*a`` into the
    anchored node itself, whose marks are the anchor's, so an error in the value an alias
    repeats (a receiver listed twice as ``- *r``) would point at the first occurrence."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases: Aliases = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if parent is not None and index is not None and self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            where = index if isinstance(index, int) else id(index)
            self.aliases[(id(parent), where)] = (mark.line + 1, mark.column + 1)
        return super().compose_node(parent, index)


class Builder:
    """Plain data from a YAML node graph, with the mark of each value by its path; bounded
    in values (aliases counted each time they are used) and depth. What an alias repeats is
    marked where the alias stands: that is the place of that occurrence."""

    def __init__(self, aliases: Aliases | None = None) -> None:
        self.marks: dict[tuple[str | int, ...], Mark] = {}
        self.key_marks: dict[tuple[str | int, ...], Mark] = {}
        self.values = 0
        self._aliases = aliases or {}
        self._scalars = yaml.constructor.SafeConstructor()

    def build(
        self, node: yaml.Node, path: tuple[str | int, ...] = (), alias: Mark | None = None
    ) -> Any:
        self.values += 1
        mark = alias or _mark(node)
        if self.values > MAX_VALUES or len(path) > MAX_DEPTH:
            raise NotificationConfigError(f"{_at(mark)}: the file is too large or too deep")
        self.marks[path] = mark
        if isinstance(node, yaml.MappingNode):
            data: dict[str, Any] = {}
            merged: list[tuple[yaml.Node, yaml.Node, Mark | None]] = []
            written: set[str] = set()  # the merge key, once written
            for key_node, value_node in node.value:
                key_mark = alias or _mark(key_node)
                if not isinstance(key_node, yaml.ScalarNode):
                    raise NotificationConfigError(f"{_at(key_mark)}: a key must be a string")
                used = alias or self._aliases.get((id(node), id(key_node)))
                key = str(key_node.value)
                # The merge key too, as in a task's file (PyYAML would let the last win).
                if key in data or key in written:
                    raise NotificationConfigError(f"{_at(key_mark)}: {key!r} is given twice")
                if key_node.tag == MERGE:
                    written.add(key)
                    merged.extend(self._merged(value_node, path, used, key_mark, (id(node),)))
                    continue
                self.key_marks[(*path, key)] = key_mark
                data[key] = self.build(value_node, (*path, key), used)
            # What the mapping writes itself wins; of the mappings merged, the first.
            for key_node, value_node, used in merged:
                key = str(key_node.value)
                if key not in data:
                    self.key_marks[(*path, key)] = used or _mark(key_node)
                    data[key] = self.build(value_node, (*path, key), used)
            return data
        if isinstance(node, yaml.SequenceNode):
            return [
                self.build(item, (*path, i), alias or self._aliases.get((id(node), i)))
                for i, item in enumerate(node.value)
            ]
        assert isinstance(node, yaml.ScalarNode)
        try:
            return self._scalars.construct_object(node)
        except yaml.YAMLError:
            raise NotificationConfigError(
                f"{_at(mark)}: not a plain YAML value (tags are not read)"
            ) from None
        except (ValueError, OverflowError):
            # PyYAML's own constructors fail so, on a number of more than 4 300 digits or a
            # date that does not exist (2026-13-01); their messages are Python's, not ours.
            problem = _UNREADABLE.get(node.tag, "a value that cannot be read")
            raise NotificationConfigError(
                f"{_at(mark)}: {_dotted(path) or '(top level)'}: {problem}"
            ) from None

    def _merged(
        self,
        value: yaml.Node,
        path: tuple[str | int, ...],
        alias: Mark | None,
        mark: Mark,
        within: tuple[int, ...],
    ) -> list[tuple[yaml.Node, yaml.Node, Mark | None]]:
        """The pairs a merge key (``<<``, at ``mark``) with ``value`` brings, with the mark of
        the alias each came through (``alias``: the merge's value's, if one), their own merges
        followed: a mapping's, or each of a list of mappings', in order (the first that has a
        key wins). ``within``: the mappings whose merges led here (one merging one of them
        merges itself). Each mapping merged, and each key it brings, counts as a value of the
        file's bound, as an alias does each time it is used: merges of merges of an empty
        mapping would otherwise be no values and endless work, and 2 300 merge keys, each
        bringing a mapping of 3 000 keys three times, 20 million pairs (40 s, 1.5 GB). Merges
        of merges are nested no deeper than values: each is a call here, and a chain of 1 500
        (anchored where nothing else builds them) ended in a RecursionError."""
        if len(within) > MAX_DEPTH:
            raise NotificationConfigError(f"{_at(mark)}: the file is too large or too deep")
        if isinstance(value, yaml.SequenceNode):
            sources = [
                (item, alias or self._aliases.get((id(value), i)), alias or _mark(item))
                for i, item in enumerate(value.value)
            ]
        else:
            sources = [(value, alias, alias or _mark(value))]
        pairs: list[tuple[yaml.Node, yaml.Node, Mark | None]] = []
        for source, used, at in sources:
            if not isinstance(source, yaml.MappingNode):
                raise NotificationConfigError(
                    f"{_at(at)}: {_dotted(path) or '(top level)'}: a merge key (<<) takes a "
                    "mapping or a list of mappings"
                )
            if id(source) in within:
                raise NotificationConfigError(f"{_at(mark)}: a mapping that merges itself")
            self.values += 1 + len(source.value)
            if self.values > MAX_VALUES:
                raise NotificationConfigError(f"{_at(mark)}: the file is too large or too deep")
            # The mapping's own keys first: they win over what it merges itself.
            merges = []
            keys: set[str] = set()
            for key_node, value_node in source.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise NotificationConfigError(
                        f"{_at(used or _mark(key_node))}: a key must be a string"
                    )
                # A mapping written only where it is merged is built nowhere else: its keys
                # given twice (<< too) are said here, or the first would win unsaid.
                if (key := str(key_node.value)) in keys:
                    raise NotificationConfigError(
                        f"{_at(used or _mark(key_node))}: {key!r} is given twice"
                    )
                keys.add(key)
                if key_node.tag == MERGE:
                    merges.append(value_node)
                else:
                    pairs.append((key_node, value_node, used))
            for value_node in merges:
                deeper = (*within, id(source))
                pairs.extend(self._merged(value_node, path, used, mark, deeper))
        return pairs


_UNREADABLE: Final = {
    "tag:yaml.org,2002:int": "a number too long to read",
    "tag:yaml.org,2002:timestamp": "a date that does not exist",
}


def _mark(node: yaml.Node) -> Mark:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _at(mark: Mark) -> str:
    return f"{mark[0]}:{mark[1]}"


def read_yaml(text: str, source: str) -> tuple[Any, Builder]:
    """The data of ``text`` and the builder that holds its marks; ``source`` begins each
    error's place (``source:line:col``)."""
    try:
        _check_depth(text, source)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except RecursionError:  # _check_depth should make this impossible: still no traceback
        raise NotificationConfigError(f"{source}:1:1: the file is too large or too deep") from None
    except yaml.reader.ReaderError as exc:
        # A control character (a NUL: a file saved as UTF-16 without a byte order mark), which
        # the reader refuses before any mark exists; said as a task's file says it.
        raise NotificationConfigError(f"{source}:{_place(text, exc)}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.line + 1}:{mark.column + 1}" if mark else "1:1"
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise NotificationConfigError(f"{source}:{where}: {problem}") from None
    if node is None:
        raise NotificationConfigError(f"{source}:1:1: the file is empty")
    builder = Builder(loader.aliases)
    try:
        data = builder.build(node)
    except NotificationConfigError as exc:
        raise NotificationConfigError(f"{source}:{exc}") from None
    return data, builder


def _place(text: str, err: yaml.reader.ReaderError) -> str:
    """``line:col: unacceptable character #xNNNN: reason`` of a reader's error in ``text``:
    PyYAML's own reader counts characters of the text (libyaml's would count bytes)."""
    index = int(err.position)
    line = text.count("\n", 0, index) + 1
    column = index - text.rfind("\n", 0, index)
    character = err.character if isinstance(err.character, int) else ord(err.character)
    return f"{line}:{column}: unacceptable character #x{character:04x}: {err.reason}"


def _check_depth(text: str, source: str) -> None:
    """NotificationConfigError at the first collection nested deeper than the builder reads.
    PyYAML composes nodes recursively, so 5 000 nested ``[`` would end in a RecursionError;
    its parser keeps a stack of its own, so its events can be counted first."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH + 1:  # the builder refuses what lies deeper anyway
                mark = event.start_mark
                where = f"{mark.line + 1}:{mark.column + 1}" if mark else "1:1"
                raise NotificationConfigError(
                    f"{source}:{where}: the file is too large or too deep"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def describe(
    exc: ValidationError,
    builder: Builder,
    source: str,
    fields: Callable[[tuple[str | int, ...]], Iterable[str]] = lambda loc: (),
) -> str:
    """The first 20 errors of ``exc``, one line each, at their places in ``builder``'s text;
    an unknown field with the one of ``fields`` (those of the mapping that holds ``loc``) it
    resembles, as a task file's is said (``did you mean 'urlFile'?``)."""
    lines = []
    for error in exc.errors(include_url=False)[:20]:
        loc = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
        loc = _model_path(loc)
        if error["type"] == "extra_forbidden":
            line, column = builder.key_marks.get(loc) or nearest(builder.marks, loc)
            message = f"unknown field {str(loc[-1])!r}{_meant(str(loc[-1]), fields(loc))}"
        else:
            line, column = nearest(builder.marks, loc)
            message = _message(error)
        where = _dotted(loc) or "(top level)"
        lines.append(f"{source}:{line}:{column}: {where}: {message}")
    return "\n".join(lines)


def _meant(key: str, fields: Iterable[str]) -> str:
    """`` (did you mean 'urlFile'?)`` for the field of ``fields`` that ``key`` resembles,
    whatever its case and underscores (``urlfile``, ``url_file``), or nothing."""
    by_shape = {field.lower(): field for field in fields}
    close = difflib.get_close_matches(key.lower().replace("_", ""), list(by_shape), n=1)
    return f" (did you mean {by_shape[close[0]]!r}?)" if close else ""


def _message(error: Any) -> str:
    if error["type"] == "string_pattern_mismatch" and error["ctx"]["pattern"] == DNS1123_LABEL:
        value = str(error["input"])
        return (
            f"{value[:63]!r}{label_slip(value)} is not a DNS-1123 label (lower-case letters, "
            "digits and '-', starting and ending with a letter or digit), as every task's "
            "namespace is: it would match no task"
        )
    if error["type"] == "model_type":  # "... or instance of Receiver": no word of the file's
        return f"a map of fields (not {_shape(error['input'])})"
    return str(error["msg"]).removeprefix("Value error, ")


def _shape(value: object) -> str:
    """What a value read from YAML is, in the file's words."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, datetime.date):  # a datetime too: YAML reads 2026-01-01 as a date
        return "a date"
    return "a list" if isinstance(value, list) else "a string"


def _model_path(loc: Sequence[str | int]) -> tuple[str | int, ...]:
    # Literal and enum unions add their own step to a location (``type.literal[...]``).
    return tuple(p for p in loc if not (isinstance(p, str) and "[" in p))


def nearest(marks: dict[tuple[str | int, ...], Mark], loc: tuple[str | int, ...]) -> Mark:
    """The mark of ``loc``, or of the nearest value around it that has one (else 1:1)."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in marks:
            return marks[loc[:end]]
    return (1, 1)


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
