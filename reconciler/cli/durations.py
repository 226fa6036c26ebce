"""Durations on the command line: ``30s``, ``5m``, ``1h30m``, ``2d``, or plain seconds, at
most :data:`MAX_SECONDS` (so that ``now - duration`` and a timer of that length never
overflow)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Final

MAX_SECONDS: Final = 100 * 365 * 86400.0  # 100 years
MAX_TEXT: Final = 64

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ValueError with a message for the user."""
    value = text.strip()
    if len(value) > MAX_TEXT:
        raise ValueError(f"invalid duration {text[:MAX_TEXT]!r}... (longer than {MAX_TEXT})")
    if re.fullmatch(r"\d+(\.\d+)?", value):
        total = float(value)
    else:
        total, position = 0.0, 0
        for match in _PART.finditer(value):
            if match.start() != position:
                break
            total += float(match.group(1)) * _UNIT[match.group(2)]
            position = match.end()
        if position != len(value) or not value:
            raise ValueError(f"invalid duration {text!r} (examples: 30s, 5m, 1h30m, 2d)")
    if not total <= MAX_SECONDS:  # also NaN and inf, should a float ever get here
        raise ValueError(f"duration {text!r} is longer than 100 years")
    return total


def duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def interval_arg(minimum: float) -> Callable[[str], float]:
    """A duration that paces a loop: one below ``minimum`` (zero among them) would make that
    loop spin and pin a core, so it is refused."""

    def parse(text: str) -> float:
        seconds = duration_arg(text)
        if seconds < minimum:
            raise argparse.ArgumentTypeError(
                f"{text.strip()[:MAX_TEXT]!r} is shorter than the least allowed, {minimum:g}s"
            )
        return seconds

    return parse


INTERVAL: Final = interval_arg(0.1)
"""The type of every option that paces a loop (resync, git polling, renewal, housekeeping)."""
