"""What a YAML syntax error adds to the parser's words when they do not say what to write: a
tab (which an editor does not show), a value that starts with a character a plain YAML value
may not start with (an unquoted ``@daily``), or with ``*``, which YAML reads as an alias (an
unquoted ``*/5 * * * *``), or a key written without a space after its colon
(``schedule:"@daily"`` among other keys: YAML reads it as text that runs on to the next key,
whose colon it then refuses, "mapping values are not allowed"), a key longer than YAML reads
(1024 characters: the parser's words name no key). The same hint from libyaml's
parser and from PyYAML's, whose words differ."""

from __future__ import annotations

import re

import yaml

from reconciler.sources.limits import excerpt
from reconciler.sources.yamlpositions import Lines

_RESERVED = {"@": '"@daily"', "`": '"`date`"'}  # no plain scalar starts with these (YAML 1.1)
_ALIAS = "while scanning an alias"
# A line that is a key and a value run together (``  - name:x``): a field's name is short. The
# text's first line may start with a byte order mark, which the reader drops.
_NO_SPACE = re.compile(r"\ufeff?[ \t]*(?:-[ \t]+)?([A-Za-z][\w.-]{0,62}):[^\s#]")
# The colon YAML refuses after such a line: a value's ("mapping values are not allowed", libyaml
# adds "in this context", PyYAML "here"), or a simple key's, in a mapping of other keys.
_LOOKED_AT = 16 * 1024  # characters before the refused colon
_KEY_MOST = 1024  # an implicit key's length YAML 1.1 and 1.2 allow (libyaml and PyYAML count so)
_BREAK = re.compile(r"\r\n?|\n")
_AFTER_NO_SPACE = ("mapping values are not allowed", "could not find expected ':'")
# What such a run-on text leaves before the refused colon on its line: a key alone (``command``),
# not a value with a colon of its own before it (``url: http://x/: y``, no slip above).
_KEY_ALONE = re.compile(r"[^:#\r\n]*")
# What YAML was in when it gave up, and what cuts a quoted value off (libyaml's and PyYAML's).
_QUOTED = "the quoted value"
_OPENED = {
    "while scanning a quoted scalar": _QUOTED,
    "while parsing a flow sequence": "the '['",
    "while parsing a flow mapping": "the '{'",
}
_NAME_SHOWN = 40  # characters of an alias's name a hint quotes
_ALIAS_NAME = re.compile(r"\*([^\s,\[\]{}]{1,1024})")
_DOCUMENT_START = re.compile(r"^---(?=[ \t\r\n]|$)", re.MULTILINE)
_CUT_OFF = ("found unexpected end of stream", "found unexpected document")


def hint(text: str, err: yaml.MarkedYAMLError, libyaml: bool) -> str:
    """`` (a tab: YAML indents with spaces)`` and the like for ``err`` in ``text``; else
    nothing. libyaml's index skips a byte order mark, PyYAML's not."""
    mark = err.problem_mark or err.context_mark
    if mark is None:
        return ""
    index = mark.index + (1 if libyaml and text.startswith("\ufeff") else 0)
    found = text[index : index + 1]
    if found == "\t":
        return " (a tab: YAML indents with spaces)"
    if found in _RESERVED and "cannot start any token" in str(err.problem):
        return (
            f" ('{found}' cannot start a plain YAML value: quote the value, "
            f"as in {_RESERVED[found]})"
        )
    if err.context == _ALIAS:
        return (
            " (a value starting with '*' is a YAML alias: quote the value, as in \"*/5 * * * *\")"
        )
    if str(err.problem).startswith(_AFTER_NO_SPACE):
        return _long_key(text, index) or _no_space(text, index)
    if str(err.problem).startswith("found undefined alias"):
        return _undefined_alias(text, index)
    return _unclosed(text, err)


def _undefined_alias(text: str, index: int) -> str:
    """Why YAML knows no anchor of the alias at ``index``: the anchor is in an earlier document,
    or nowhere before the alias."""
    name = _ALIAS_NAME.match(text, index)
    if name is None:
        return ""
    anchor = f"&{excerpt(name[1], _NAME_SHOWN)}"
    # Before the '---' that begins the alias's document: not an anchor commented out in it.
    begins = max((m.start() for m in _DOCUMENT_START.finditer(text, 0, index)), default=0)
    if re.search(rf"&{re.escape(name[1])}(?![^\s,\[\]{{}}])", text[:begins]):
        return (
            f" (the anchor {anchor} is in an earlier document: an alias reaches only the "
            "document it is in, up to its '---')"
        )
    return f" (no anchor {anchor} before it: an anchor comes before its aliases)"


def _unclosed(text: str, err: yaml.MarkedYAMLError) -> str:
    """`` (inside the '[' that starts at line 5, column 13)`` when YAML gave up on a quote, '['
    or '{' on a line below its start: one left open is found only at the next '---' or the end
    of the text, a missing ',' where the next line's key is. A quote cut off there is said so."""
    inside = _OPENED.get(str(err.context))
    start, end = err.context_mark, err.problem_mark
    if inside is None or start is None or end is None or start.line == end.line:
        return ""
    line, column = Lines(text).place(start)
    if inside == _QUOTED and str(err.problem).startswith(_CUT_OFF):
        return f" (the quoted value that starts at line {line}, column {column} is not closed)"
    return f" (inside {inside} that starts at line {line}, column {column})"


def _long_key(text: str, index: int) -> str:
    """`` (a key of 1100 characters: YAML ends a key at 1024)`` when the refused colon at
    ``index`` follows a key longer than YAML reads before its ':' (libyaml says "mapping values
    are not allowed" there, PyYAML "could not find expected ':'"): the text from the start of
    its line, past its indent and a ``- ``, with no colon of its own."""
    above = max(0, index - _LOOKED_AT)
    start = max(text.rfind("\n", above, index), text.rfind("\r", above, index)) + 1
    key = text[start or above : index].lstrip(" ")
    key = key[2:].lstrip(" ") if key.startswith("- ") else key
    if len(key) <= _KEY_MOST or ":" in key or (start == 0 and above > 0):
        return ""
    return f" (a key of {len(key)} characters: YAML reads at most {_KEY_MOST} before its ':')"


def _no_space(text: str, index: int) -> str:
    """`` (line 5: write a space after the ':' of 'schedule:')`` for the refused colon at
    ``index`` when the text YAML read up to it starts on a line above with a key and its value
    run together; the first of such lines, as the text runs on through each. Only the lines
    just above are looked at (``_LOOKED_AT``): the work is bounded, whatever the file."""
    above = max(0, index - _LOOKED_AT)
    start = max(text.rfind("\n", above, index), text.rfind("\r", above, index)) + 1
    if not _KEY_ALONE.fullmatch(text, start or above, index):
        return ""  # the refused colon follows a value of its own line
    breaks = list(_BREAK.finditer(text, above, index))
    starts = [above, *(brk.end() for brk in breaks)]
    ends = [brk.start() for brk in breaks]
    found = None
    for i in range(len(ends) - 1, -1, -1):  # the lines before the refused colon's own
        line = text[starts[i] : ends[i]]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        slip = _NO_SPACE.match(line)
        if slip is None or (i == 0 and above > 0):  # no slip, or a line cut by the window
            break
        found = (starts[i], slip.group(1))
    if found is None:
        return ""
    number = Lines(text).of_index(found[0])[0]
    return f" (line {number}: write a space after the ':' of '{found[1]}:')"
