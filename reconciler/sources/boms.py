"""Byte order marks at the start of a later YAML document.

A file saved by an editor that writes one (Notepad) and joined to another (``cat a.yaml
b.yaml``, a ``---`` between them) has a U+FEFF where its document starts. YAML allows one at the
start of any document, and kubectl reads it so; the YAML reader takes only the one at the start
of the text: libyaml makes the next one a column of indentation (``did not find expected
<document start>``), PyYAML part of the first key. ``document_boms`` makes each such mark a
space where it means nothing (at the end of the marker line before it, or after the marker it
precedes): the text keeps its length, every line its number, every character of the mark's
line and after it its index, and the characters of that line the column they have when the
mark is not counted (as libyaml counts the one at the start of a text).
"""

from __future__ import annotations

import re

BOM = "\ufeff"
# A line of leading marks, and the rest of the line (a "\r" of a "\r\n" left out).
_LINE = re.compile(f"^({BOM}+)([^\\r\\n]*)", re.MULTILINE)
# A document marker alone on its line (a comment may follow): the next line starts a document.
_MARKER = re.compile(r"(?:---|\.\.\.)(?:[ \t]+(?:#.*)?)?\r?")
_STARTS_MARKER = re.compile(r"(?:---|\.\.\.)(?:[ \t]|$)")


def document_boms(text: str) -> str:
    """``text`` with every byte order mark at the start of a document (the text's, or a line
    after a ``---`` or ``...`` line, or one before such a marker) made a space where a space
    means nothing: at the end of the marker line before it, or right after the marker it
    precedes (never at the end of its own line: a ``\\`` there continues a quoted string, and
    a space after it would be part of the string). The first character of the text is left
    for the reader, which drops it."""
    if text.find(BOM, 1) < 0:
        return text
    out: list[str] = []
    done = 0  # text[:done] is in out
    for found in _LINE.finditer(text):
        start, marks, rest = found.start(), found.group(1), found.group(2)
        if start == 0:  # the reader drops one; more, only before a marker or a plain line end
            if len(marks) > 1 and _STARTS_MARKER.match(rest):
                out += [BOM, rest[:3], " " * (len(marks) - 1)]
                done = found.start(2) + 3
            elif len(marks) > 1 and not rest.rstrip().endswith("\\"):
                out += [BOM, rest, " " * (len(marks) - 1)]
                done = found.end()
            continue
        if _STARTS_MARKER.match(rest):  # "---" after it: the spaces go after that "---"
            out += [text[done:start], rest[:3], " " * len(marks)]
            done = found.start(2) + 3
            continue
        line_start = text.rfind("\n", 0, start - 1) + 1
        previous = text[line_start : start - 1]
        if _MARKER.fullmatch(previous.lstrip(BOM)):
            # At the end of that marker line (before its "\r", if any): the characters of the
            # mark's own line keep their index, their column as if the mark were not there.
            end = start - 1 - previous.endswith("\r")
            out += [text[done:end], " " * len(marks), text[end:start]]
            done = found.start(2)
        # else: inside a document: a character of it, as YAML has it
    return "".join(out) + text[done:]
