"""Text from elsewhere (a server's answer) made safe to print on a terminal.

A string a server chose can hold escape sequences that retitle the window, clear the screen or
paint a fake line, bidirectional overrides and marks that reorder what is shown, and invisible
characters (zero-width ones, tags). Every such string a command prints for a human goes through
:func:`printable` first, which escapes every character of the Unicode categories that are no
text: Cc, Cf, Cs (a lone surrogate, which stdout's ``surrogateescape`` would write as raw bytes
that the terminal reassembles into U+202E or a C1 CSI, or a strict locale would refuse with a
traceback), Zl and Zp, but the joiners and the soft hyphen of ordinary text. ``--json`` output
needs nothing, as ``json.dumps`` escapes control characters and surrogates itself. A string
longer than :data:`MAX_SHOWN` characters is cut (:func:`shown`, :func:`cut`): an answer's bounds
are in MiB, a terminal's line is not, and a server's 16 MiB "error" is not printed whole."""

from __future__ import annotations

import functools
import re
from typing import Any, Final

MAX_SHOWN: Final = 4096  # characters of one string of an answer that a table or a line shows
# Controls, format characters (bidirectional embeddings, overrides, isolates and marks,
# zero-width characters, tags), surrogates, the line and paragraph separators. Not Cn
# (unassigned: an emoji newer than this Python's Unicode database is one), nor Co (private use:
# glyphs of a font, which move nothing).
_ESCAPED: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Format characters that are part of ordinary text, and neither reorder nor hide any: the
# zero-width non-joiner (in most Persian words) and joiner (emoji sequences, Indic scripts),
# and the soft hyphen.
_TEXT: Final = frozenset({0x200C, 0x200D, 0x00AD})


def printable(text: object) -> str:
    """``str(text)`` with every character of the categories in :data:`_ESCAPED` shown as its
    escape (``\\x1b``, ``\\u202e``, ``\\U000e0041``), so that printing it moves nothing but the
    cursor over its own characters."""
    text = str(text)
    # Every escaped character is one str.isprintable() refuses: most text is checked at C
    # speed and never meets the expressions.
    if text.isprintable():
        return text
    in_bmp, outside = _classes()
    text = in_bmp.sub(_escape, text)
    # A class of code points past U+FFFF is a list of ranges that every character is compared
    # with (five times slower than the BMP's bitmap): only a string holding one is searched.
    return outside.sub(_escape, text) if _PAST_BMP.search(text) else text


_PAST_BMP: Final = re.compile("[\U00010000-\U0010ffff]")


@functools.cache
def _classes() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Character classes of every code point of :data:`_ESCAPED` from this Python's Unicode
    database, in the BMP and past it: built once (a tenth of a second), and only when a string
    needs them."""
    import unicodedata

    ranges: list[list[int]] = []
    for code in range(0x110000):
        if unicodedata.category(chr(code)) in _ESCAPED and code not in _TEXT:
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    in_bmp = [(low, min(high, 0xFFFF)) for low, high in ranges if low <= 0xFFFF]
    outside = [(max(low, 0x10000), high) for low, high in ranges if high > 0xFFFF]
    return _class(in_bmp), _class(outside)


def _class(ranges: list[tuple[int, int]]) -> re.Pattern[str]:
    # \UXXXXXXXX escapes, which re reads (a lone surrogate too).
    return re.compile("[" + "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in ranges) + "]")


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def cut(text: object, limit: int = MAX_SHOWN) -> str:
    """:func:`printable`, a string longer than ``limit`` characters cut to ``limit`` and
    followed by how many more it had."""
    text = str(text)
    if len(text) <= limit:
        return printable(text)
    # Cut before escaping: the count is of the server's characters.
    return f"{printable(text[:limit])}... [{len(text) - limit:,} more characters cut]"


def shown(value: Any, absent: str = "-") -> str:
    """A scalar of an answer as it can be printed (``absent`` for none or ""), cut as
    :func:`cut` does; an object or a list, where a scalar should be, as its kind."""
    if value is None or value == "":
        return absent
    if isinstance(value, str | int | float):  # bool is an int
        return cut(value)
    return f"<{type(value).__name__}>"
