"""Where each key and value of a YAML document starts, from its node tree: an error found
in the data (pydantic's path to a field) is reported at the line and column of that field."""

from __future__ import annotations

import bisect
import dataclasses
import operator
import re
from array import array
from collections.abc import Iterable, Sequence
from itertools import accumulate, repeat
from typing import Any

import yaml

from reconciler.sources.yamlwalk import STR

Path = tuple[str | int, ...]
# Line breaks of YAML 1.1 (PyYAML's and libyaml's marks count them) that editors, grep and
# GitHub do not break lines at: each would move every later place down a line.
_YAML_ONLY_BREAKS = ("\x85", "\u2028", "\u2029")
_YAML_ONLY_BREAK = re.compile(f"[{''.join(_YAML_ONLY_BREAKS)}]")


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
    agree; in another, a mark's line is the parser's less the breaks of YAML's own before it,
    and its column is counted from the editor's line start when the parser's line starts at
    one of them. What is kept grows with the number of those breaks, not of lines."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._bom = text.startswith("\ufeff")  # the reader drops it: never a column
        self._parser_agrees = not any(brk in text for brk in _YAML_ONLY_BREAKS)
        # Each break of YAML's own: where, the editor's line it is on, that line's start.
        self._breaks: array[int] | None = None  # found on first use
        self._break_lines = array("q")
        self._break_line_starts = array("q")

    def _find_breaks(self) -> array[int]:
        """The breaks of YAML's own, and (from the text between them, counted and searched
        by ``str``'s own methods, no Python code per line) the editor's line of each."""
        text = self._text
        breaks = array("q", (found.start() for found in _YAML_ONLY_BREAK.finditer(text)))
        after = [0, *(at + 1 for at in breaks[:-1])]  # where the text before each starts
        broken: Iterable[int] = map(text.count, repeat("\n"), after, breaks)
        last = map(text.rfind, repeat("\n"), after, breaks)
        if "\r" in text:
            broken = map(_editor_breaks, repeat(text), after, breaks)
            last = map(max, last, map(text.rfind, repeat("\r"), after, breaks))
        self._break_lines = array("q", accumulate(broken, initial=1))[1:]
        # A line starts after the last break before a break of YAML's own, or where the
        # line of the one before started (rfind's -1 + 1 never beats it: starts only grow).
        starts = accumulate(map(operator.add, last, repeat(1)), max, initial=0)
        self._break_line_starts = array("q", starts)[1:]
        self._breaks = breaks
        return breaks

    def place(self, mark: yaml.Mark) -> tuple[int, int]:
        """The 1-based line and column of ``mark``."""
        if self._parser_agrees:
            return mark.line + 1, mark.column + 1
        breaks = self._breaks if self._breaks is not None else self._find_breaks()
        # PyYAML's index counts a leading byte order mark, libyaml's (no buffer) does not.
        index = mark.index + (self._bom and mark.buffer is None)
        before = bisect.bisect_left(breaks, index)
        line = mark.line + 1 - before
        if before and line == self._break_lines[before - 1]:  # the parser's line starts there
            return line, self._column(index, self._break_line_starts[before - 1])
        return line, mark.column + 1

    def of_index(self, index: int) -> tuple[int, int]:
        """The 1-based line and column of the character at ``index`` of the text (counted
        through it: for the one place a reader error is)."""
        text = self._text
        start = max(text.rfind("\n", 0, index), text.rfind("\r", 0, index)) + 1
        return _editor_breaks(text, 0, index) + 1, self._column(index, start)

    def _column(self, index: int, line_start: int) -> int:
        return index - line_start + 1 - (self._bom and line_start == 0)


def _editor_breaks(text: str, start: int, end: int) -> int:
    """How many lines an editor breaks ``text[start:end]`` into, less one."""
    crlf = text.count("\r\n", start, end)
    return text.count("\n", start, end) + text.count("\r", start, end) - crlf


def reader_index(text: str, err: yaml.reader.ReaderError, loader: object) -> int:
    """The index in ``text`` of the character a reader error (a control character) is at:
    libyaml's position counts the bytes of the text in UTF-8, a byte order mark's three too."""
    if isinstance(loader, yaml.reader.Reader):  # PyYAML's own reader counts characters
        return int(err.position)
    return len(text.encode()[: err.position].decode(errors="ignore"))


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
