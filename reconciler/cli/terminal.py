"""Text from elsewhere (a server's answer) made safe to print on a terminal.

A string a server chose can hold escape sequences that retitle the window, clear the screen or
paint a fake line, and bidirectional overrides that reorder what is shown. Every such string a
command prints for a human goes through :func:`printable` first; ``--json`` output needs
nothing, as ``json.dumps`` escapes control characters itself. A string longer than
:data:`MAX_SHOWN` characters is cut (:func:`shown`, :func:`cut`): an answer's bounds are in
MiB, a terminal's line is not, and a server's 16 MiB "error" is not printed whole.
"""

from __future__ import annotations

import re
from typing import Any, Final

# C0 (but the plain space), DEL, C1, the line and paragraph separators, and the bidirectional
# embeddings, overrides and isolates.
MAX_SHOWN: Final = 4096  # characters of one string of an answer that a table or a line shows
_UNPRINTABLE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``str(text)`` with every control character shown as its escape (``\\x1b``,
    ``\\u202e``), so that printing it moves nothing but the cursor over its own characters."""
    return _UNPRINTABLE.sub(_escape, str(text))


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


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
