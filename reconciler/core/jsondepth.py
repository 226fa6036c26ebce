"""JSON decoded with its nesting bounded, whatever the text holds.

Python's decoder recurses and fails near 1 000 levels (RecursionError), and a Kubernetes
object may nest as deep as the API server allows (a CronTask's ``spec.job.spec``, which the
CRD leaves open; any object's ``managedFields``): one such object must not fail a whole list
or watch. :func:`decode` costs the size of the text whatever its depth, and replaces each value
nested too deep by a marker of the caller's choice, so that the rest still decodes.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any, Final

# A JSON string (possessive: linear on any input), and the same or a bracket.
_STRING: Final = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
_STRINGS: Final = re.compile(_STRING, re.DOTALL)
_NOT_BRACKETS: Final = re.compile(r"[^\[\]{}]++")
_TOKENS: Final = re.compile(_STRING + r"|[\[\]{}]", re.DOTALL)
_LEFT_OUT: Final = "NaN"  # never in the API server's JSON (Go's encoder refuses it): our marker


def decode(text: str | bytes, depth: int, left_out: Any = None) -> Any:
    """The JSON ``text`` (as :func:`json.loads`), each value nested more than ``depth`` levels
    deep (the outermost value counting one) replaced by ``left_out``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    deepest = max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)
    if deepest > depth:
        text = _prune(text, depth)
    # NaN and Infinity are not JSON: only the marker of a value left out can be one.
    return json.loads(text, parse_constant=lambda _: left_out)


def _prune(text: str, depth: int) -> str:
    kept: list[str] = []
    level, start = 0, 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            level += 1
            if level == depth + 1:
                kept.append(text[start : match.start()])
        elif token in ("]", "}"):
            if level == depth + 1:
                kept.append(_LEFT_OUT)
                start = match.end()
            level -= 1
    if level <= depth:  # else unbalanced: the text is cut short, and will not decode
        kept.append(text[start:])
    return "".join(kept)
