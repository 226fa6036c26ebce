"""Text from elsewhere (a server's answer) made safe to print on a terminal.

A string a server chose can hold escape sequences that retitle the window, clear the screen or
paint a fake line, bidirectional overrides and marks that reorder what is shown, and invisible
characters (zero-width ones, tags). Every such string a command prints for a human goes through
:func:`printable` first, which escapes every character of the Unicode categories that are no
text: Cc, Cf, Cs (a lone surrogate, which stdout's ``surrogateescape`` would write as raw bytes
that the terminal reassembles into U+202E or a C1 CSI, or a strict locale would refuse with a
traceback), Zl and Zp, but the joiners and the soft hyphen of ordinary text (the one
classification of :mod:`reconciler.visible`, which the status page uses too). ``--json`` output
needs nothing, as ``json.dumps`` escapes control characters and surrogates itself. A string
longer than :data:`MAX_SHOWN` characters is cut (:func:`shown`, :func:`cut`): an answer's bounds
are in MiB, a terminal's line is not, and a server's 16 MiB "error" is not printed whole."""

from __future__ import annotations

from typing import Any, Final

from reconciler.visible import escaped

MAX_SHOWN: Final = 4096  # characters of one string of an answer that a table or a line shows


def printable(text: object) -> str:
    """``str(text)`` with every character that is no text shown as its escape (``\\x1b``,
    ``\\u202e``, ``\\U000e0041``: :func:`reconciler.visible.escaped`), so that printing it
    moves nothing but the cursor over its own characters."""
    return escaped(str(text))


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
