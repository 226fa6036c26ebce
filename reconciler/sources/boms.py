"""Byte order marks at the start of a later YAML document.

A file saved by an editor that writes one (Notepad) and joined to another (``cat a.yaml
b.yaml``, a ``---`` between them) has a U+FEFF where its document starts. YAML allows one at the
start of any document, and kubectl reads it so; the YAML reader takes only the one at the start
of the text: libyaml makes the next one a column of indentation (``did not find expected
<document start>``), PyYAML part of the first key. ``document_boms`` makes each such mark a
space at the end of its line, where it means nothing: the text keeps its length, every line
its number, every character after that line its index, and the characters of the line the
column they have when the mark is not counted (as libyaml counts the one at the start of a
text).
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
    after a ``---`` or ``...`` line, or one before such a marker) moved to the end of its line
    as a space; the first character of the text is left for the reader, which drops it."""
    if text.find(BOM, 1) < 0:
        return text
    return _LINE.sub(lambda found: _moved(text, found), text)


def _moved(text: str, found: re.Match[str]) -> str:
    start = found.start()
    marks, rest = found.group(1), found.group(2)
    if start == 0:  # the reader drops one
        return BOM + rest + " " * (len(marks) - 1)
    previous = text[text.rfind("\n", 0, start - 1) + 1 : start - 1].lstrip(BOM)
    if _MARKER.fullmatch(previous) or _STARTS_MARKER.match(rest):
        return rest + " " * len(marks)
    return found.group()  # inside a document: a character of it, as YAML has it
