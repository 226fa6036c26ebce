"""Text from elsewhere (a server's answer, a command's output, a task's definition) shown as
the characters it holds, never as what they do to the text around them.

A string someone else chose can hold escape sequences that retitle a terminal or paint a fake
line, bidirectional overrides, embeddings, isolates and marks that make what follows them be
drawn reordered (the "Trojan Source" trick: a U+202E draws ``user`` as ``resu``), and invisible
characters (zero-width ones, tags) that hide text. :func:`escaped` writes every character of
the Unicode categories that are no text as its escape (``\\x1b``, ``\\u202e``,
``\\U000e0041``): Cc, Cf, Cs (a lone surrogate, which a UTF-8 encoder refuses or writes as the
bytes of another character), Zl and Zp. It leaves the format characters that ordinary text
holds, which neither reorder nor hide any: the zero-width non-joiner (in most Persian words),
the zero-width joiner (emoji sequences such as a family, Indic scripts) and the soft hyphen.
Letters of any script and emoji are left as they are.

One classification for every place that shows such text: the CLI (``cli.terminal``) and the
status page (``web.views``, ``web.pages``)."""

from __future__ import annotations

import functools
import re
from typing import Final

# Controls, format characters (bidirectional embeddings, overrides, isolates and marks,
# zero-width characters, tags), surrogates, the line and paragraph separators. Not Cn
# (unassigned: an emoji newer than this Python's Unicode database is one), nor Co (private use:
# glyphs of a font, which move nothing).
ESCAPED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Format characters that are part of ordinary text, and neither reorder nor hide any: the
# zero-width non-joiner and joiner, and the soft hyphen.
TEXT_FORMAT: Final = frozenset({0x200C, 0x200D, 0x00AD})
_PAST_BMP: Final = re.compile("[\U00010000-\U0010ffff]")


def escaped(text: str, keep: str = "") -> str:
    """``text`` with every character of :data:`ESCAPED_CATEGORIES` (but those of
    :data:`TEXT_FORMAT`, and those of ``keep``: a page keeps ``"\\t\\n"``) written as its
    escape, so that showing it moves nothing but over its own characters."""
    # Every escaped character is one str.isprintable() refuses: most text is checked at C
    # speed and never meets the expressions.
    if text.isprintable():
        return text
    in_bmp, outside = _classes(keep)
    text = in_bmp.sub(_escape, text)
    # A class of code points past U+FFFF is a list of ranges that every character is compared
    # with (five times slower than the BMP's bitmap): only a string holding one is searched.
    return outside.sub(_escape, text) if _PAST_BMP.search(text) else text


def has_escaped(text: str, keep: str = "") -> bool:
    """Whether :func:`escaped` would change ``text``."""
    return escaped(text, keep) != text


@functools.cache
def _ranges() -> tuple[tuple[int, int], ...]:
    """The code points of :data:`ESCAPED_CATEGORIES` but :data:`TEXT_FORMAT`, as ranges, from
    this Python's Unicode database: read once (a tenth of a second), and only when a string
    needs them."""
    import unicodedata

    ranges: list[list[int]] = []
    for code in range(0x110000):
        if unicodedata.category(chr(code)) in ESCAPED_CATEGORIES and code not in TEXT_FORMAT:
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    return tuple((low, high) for low, high in ranges)


@functools.cache
def _classes(keep: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Character classes of :func:`_ranges` but ``keep``, in the BMP and past it."""
    ranges = _without(_ranges(), {ord(c) for c in keep})
    in_bmp = [(low, min(high, 0xFFFF)) for low, high in ranges if low <= 0xFFFF]
    outside = [(max(low, 0x10000), high) for low, high in ranges if high > 0xFFFF]
    return _class(in_bmp), _class(outside)


def _without(ranges: tuple[tuple[int, int], ...], kept: set[int]) -> list[tuple[int, int]]:
    left: list[tuple[int, int]] = []
    for low, high in ranges:
        for code in sorted(k for k in kept if low <= k <= high):
            if low < code:
                left.append((low, code - 1))
            low = code + 1
        if low <= high:
            left.append((low, high))
    return left


def _class(ranges: list[tuple[int, int]]) -> re.Pattern[str]:
    # \UXXXXXXXX escapes, which re reads (a lone surrogate too).
    return re.compile("[" + "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in ranges) + "]")


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
