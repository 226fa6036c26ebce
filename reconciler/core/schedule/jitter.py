"""Stable per-task jitter, so that many tasks sharing a schedule do not all start at once."""

from __future__ import annotations

import hashlib


def jitter_offset(key: str, max_seconds: int) -> int:
    """A stable offset in ``[0, max_seconds]`` derived from ``sha256(key)``.

    The same key gives the same offset in every process and on every host (unlike ``hash()``,
    which is salted per process), so replicas agree on a task's slots.
    """
    if max_seconds < 0:
        raise ValueError(f"max_seconds must not be negative, got {max_seconds}")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    # 128 bits make the modulo bias negligible for any sensible max_seconds.
    return int.from_bytes(digest[:16], "big") % (max_seconds + 1)
