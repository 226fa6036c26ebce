"""Text from elsewhere (a server's answer) made safe to print on a terminal.

A string a server chose can hold escape sequences that retitle the window, clear the screen or
paint a fake line, and bidirectional overrides that reorder what is shown. Every such string a
command prints for a human goes through :func:`printable` first; ``--json`` output needs
nothing, as ``json.dumps`` escapes control characters itself.
"""

from __future__ import annotations

import re
from typing import Any, Final

# C0 (but the plain space), DEL, C1, the line and paragraph separators, and the bidirectional
# embeddings, overrides and isolates.
_UNPRINTABLE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``str(text)`` with every control character shown as its escape (``\\x1b``,
    ``\\u202e``), so that printing it moves nothing but the cursor over its own characters."""
    return _UNPRINTABLE.sub(_escape, str(text))


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def shown(value: Any, absent: str = "-") -> str:
    """A scalar of an answer as it can be printed (``absent`` for none or ""); an object or
    a list, where a scalar should be, as its kind."""
    if value is None or value == "":
        return absent
    if isinstance(value, str | int | float):  # bool is an int
        return printable(value)
    return f"<{type(value).__name__}>"
