"""Byte order marks: at the start of a later YAML document, and of a text in another encoding.

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

import codecs
import re

from reconciler.core.textplace import byte_place

BOM = "\ufeff"
# A line of leading marks, and the rest of the line (a "\r" of a "\r\n" left out).
_LINE = re.compile(f"^({BOM}+)([^\\r\\n]*)", re.MULTILINE)
# A document marker alone on its line (a comment may follow): the next line starts a document.
_MARKER = re.compile(r"(?:---|\.\.\.)(?:[ \t]+(?:#.*)?)?\r?")
_STARTS_MARKER = re.compile(r"(?:---|\.\.\.)(?:[ \t]|$)")
# The marks of the encodings YAML allows besides UTF-8; UTF-32's first (UTF-16 LE's is its start).
_ENCODINGS = {
    codecs.BOM_UTF32_LE: "UTF-32 (little-endian",
    codecs.BOM_UTF32_BE: "UTF-32 (big-endian",
    codecs.BOM_UTF16_LE: "UTF-16 (little-endian",
    codecs.BOM_UTF16_BE: "UTF-16 (big-endian",
}


# What YAML's own detection reads of a text without a byte order mark: a NUL among its first
# four bytes, where UTF-8 YAML has none (a NUL is no character of it), and which of them.
_UNMARKED = {
    (True, True, True, False): "UTF-32 (big-endian",
    (False, True, True, True): "UTF-32 (little-endian",
    (True, False): "UTF-16 (big-endian",
    (False, True): "UTF-16 (little-endian",
}
_UNMARKED_REASON = "unmarked"


def decoded(data: bytes) -> str:
    """``data`` as UTF-8; :class:`UnicodeDecodeError` also for a text of UTF-16 or UTF-32 with
    no byte order mark, whose ASCII characters each come with NULs that are UTF-8 too (YAML
    said "unacceptable character #x0000" of it). :func:`not_utf8` says which."""
    if b"\0" in data[:4]:
        raise UnicodeDecodeError("utf-8", data, 0, 1, _UNMARKED_REASON)
    return data.decode("utf-8")


def not_utf8(data: bytes, err: UnicodeDecodeError) -> tuple[int, int, str]:
    """The line and column where ``data`` stops being UTF-8 (``err``: decoding it), and the
    message: a text that starts with the byte order mark of UTF-16 or UTF-32 (Windows
    PowerShell 5 writes one; YAML allows it, crontask reads only UTF-8) is named so, at 1:1,
    and one whose first bytes say so without a mark (:func:`decoded`)."""
    for mark, encoding in _ENCODINGS.items():
        if data.startswith(mark):
            return 1, 1, f"not UTF-8 but {encoding}; its byte order mark says so): save it as UTF-8"
    if err.reason == _UNMARKED_REASON:
        nuls = tuple(byte == 0 for byte in data[:4])
        unmarked = _UNMARKED.get(nuls) or _UNMARKED.get(nuls[:2])
        if unmarked is not None:
            why = f"{unmarked}, without a byte order mark; its first bytes say so)"
            return 1, 1, f"not UTF-8 but {why}: save it as UTF-8"
        # Placed in characters, as byte_place does (the bytes before it may not be UTF-8).
        before = data[: data.index(b"\0")].decode("utf-8", "replace").removeprefix(BOM)
        line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
        return line, column, "not UTF-8: a NUL byte (0x00) at its start"
    line, column = byte_place(data, err.start)
    return line, column, f"not UTF-8: {_byte(data[err.start])}: save it as UTF-8"


def _byte(byte: int) -> str:
    """``byte 0xe9 ('é' in Windows-1252)``: what an editor that saved no UTF-8 most likely
    meant by it (Windows-1252's 0xa0-0xff are Latin-1's); the byte alone where that is no
    printable character."""
    try:
        char = bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90, 0x9d: none in Windows-1252
        char = ""
    seen = f" ({char!r} in Windows-1252)" if char.strip() and char.isprintable() else ""
    return f"byte 0x{byte:02x}{seen}"


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
