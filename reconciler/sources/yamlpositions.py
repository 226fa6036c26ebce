"""Where each key and value of a YAML document starts, from its node tree: an error found
in the data (pydantic's path to a field) is reported at the line and column of that field."""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import yaml

from reconciler.sources.yamlwalk import STR

Path = tuple[str | int, ...]
# Line breaks of YAML 1.1 (PyYAML's and libyaml's marks count them) that editors, grep and
# GitHub do not break lines at: each would move every later place down a line.
_YAML_ONLY_BREAKS = ("\x85", "\u2028", "\u2029")
_BREAK = re.compile(r"\r\n?|\n")


@dataclasses.dataclass(frozen=True, slots=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based
    plain_scalar: bool = False  # unquoted, single line: a column inside it can be pointed at
    quoted: bool = False  # quoted, single line, its text between the quotes the value itself


class Lines:
    """A text's lines as an editor numbers them (broken at ``\\n``, ``\\r\\n`` and ``\\r``
    only), to turn the parser's marks into the line and column a user finds there. A text
    without a break of YAML's own (nearly every one) keeps the parser's numbers, which then
    agree; in another, the start of each line is found once, and a mark placed by its index."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._bom = text.startswith("\ufeff")  # the reader drops it: never a column
        self._starts: list[int] | None = None  # found on first use
        self._parser_agrees = not any(brk in text for brk in _YAML_ONLY_BREAKS)

    def _line_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = [0, *(found.end() for found in _BREAK.finditer(self._text))]
        return self._starts

    def place(self, mark: yaml.Mark) -> tuple[int, int]:
        """The 1-based line and column of ``mark``."""
        if self._parser_agrees:
            return mark.line + 1, mark.column + 1
        # PyYAML's index counts a leading byte order mark, libyaml's (no buffer) does not.
        line, column = self.of_index(mark.index + (self._bom and mark.buffer is None))
        return line, column - (self._bom and line == 1)

    def of_index(self, index: int) -> tuple[int, int]:
        """The 1-based line and column of the character at ``index`` of the text."""
        starts = self._line_starts()
        line = bisect.bisect_right(starts, index)
        return line, index - starts[line - 1] + 1


class Positions:
    """Where each key and value of one document starts."""

    def __init__(self, root: yaml.Node, lines: Lines) -> None:
        self._lines = lines
        self.marks: dict[Path, Mark] = {}
        self.values: dict[Path, Mark] = {}
        self.duplicates: list[tuple[Path, Mark]] = []
        self._seen_duplicates: set[tuple[int, int]] = set()  # an alias repeats its mapping
        self._constructor = yaml.constructor.SafeConstructor()
        self.root = mark_of(root, lines)
        self._walk(root, ())

    def _walk(self, node: yaml.Node, path: Path) -> None:
        self.values[path] = mark_of(node, self._lines)
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, value_node in node.value:
                key = self._key(key_node)
                child = (*path, named(key))
                # By type too: 1, 1.0 and true are equal in Python, not in YAML.
                if (type(key), key) in seen:
                    # PyYAML keeps the last of two equal keys without a word; say so instead.
                    mark = mark_of(key_node, self._lines)
                    if (mark.line, mark.column) not in self._seen_duplicates:
                        self._seen_duplicates.add((mark.line, mark.column))
                        self.duplicates.append((child, mark))
                seen.add((type(key), key))
                self.marks[child] = mark_of(key_node, self._lines)
                self._walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = (*path, index)
                self.marks[child] = mark_of(item, self._lines)
                self._walk(item, child)

    def _key(self, node: yaml.Node) -> Any:
        """The key ``node`` makes in the data (``1``, ``True``, ``None``, not their text), so
        that pydantic's path to it finds it."""
        if type(node) is not yaml.ScalarNode:
            return "<complex key>"  # a sequence or mapping as a key (`? [a, b]`) has no name
        if node.tag == STR:
            return node.value
        try:
            key = self._constructor.construct_object(node)
            hash(key)
        except (yaml.YAMLError, ValueError, TypeError):  # built in vain: the text will do
            return node.value
        return key

    def find(self, path: Sequence[str | int]) -> Mark:
        """The key of ``path``, or of its nearest ancestor that exists in the text."""
        probe = tuple(path)
        while probe:
            if probe in self.marks:
                return self.marks[probe]
            probe = probe[:-1]
        return self.root


def named(key: Any) -> str | int:
    """A key as pydantic names it in an error's path: a string, an int (a bool is one), or
    the ``repr`` of anything else (``None``, ``1.5``)."""
    if isinstance(key, str):
        return key
    if isinstance(key, int) and -(2**63) <= key < 2**63:
        return int(key)
    return repr(key)


def mark_of(node: yaml.Node, lines: Lines) -> Mark:
    """Where ``node`` starts, placed by ``lines`` (its text's)."""
    start, end = node.start_mark, node.end_mark
    style = getattr(node, "style", None)
    single_line = start.line == end.line
    scalar = isinstance(node, yaml.ScalarNode)
    line, column = lines.place(start)
    return Mark(
        line=line,
        column=column,
        # A plain scalar's style is None from PyYAML's Python composer, "" from libyaml's.
        plain_scalar=scalar and not style and single_line,
        quoted=scalar and style in ("'", '"') and single_line and _verbatim(node),
    )


def _verbatim(node: yaml.Node) -> bool:
    """Whether a single-line quoted scalar's text between its quotes is its value, so that
    an offset in the value is one in the text. On one line, every other character stands for
    itself, and each escape (``\\t``, ``\\x30``, ``\\u00e9``, ``\\\\``, ``''``) is two
    characters or more of text for one of the value: the text is the value exactly when it is
    as long. Both PyYAML's and libyaml's columns count characters, as ``len`` does."""
    return node.end_mark.column - node.start_mark.column - 2 == len(node.value)
