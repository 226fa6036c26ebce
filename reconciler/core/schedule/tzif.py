"""Whether the TZif data that :class:`zoneinfo.ZoneInfo` loads hold one UTC offset for all time.

The one read in this package besides ZoneInfo's own (see the package's rule): :mod:`zoneinfo`
exposes no transition table, and no number of offset probes proves that a zone has no change
between them, so the answer is read from the same file ZoneInfo reads. :func:`read` finds it the
way ZoneInfo does (``zoneinfo.TZPATH`` in order, then the ``tzdata`` package) and refuses the keys
ZoneInfo refuses as paths; :func:`holds_one_offset` is pure. Callers cache the answer: a zone's
file is read once, as ZoneInfo reads it once.
"""

from __future__ import annotations

import importlib.resources
import os
import struct
import zoneinfo

# RFC 8536 §3.1: magic, version, 15 reserved bytes, then isutcnt, isstdcnt, leapcnt, timecnt,
# typecnt and charcnt.
_HEADER = struct.Struct(">4sc15x6L")
_MAGIC = b"TZif"

# zoneinfo's own test of a key (zoneinfo._tzpath._validate_tzfile_path), repeated with public
# functions: a key joined to a TZPATH directory must name a file under it.
_BASE = os.path.normpath(os.path.join("_", "_"))[:-1]


def read(key: str) -> bytes:
    """The TZif bytes ``ZoneInfo(key)`` loads. :class:`ValueError` for a key that is not a
    normalised relative path (as ZoneInfo); :class:`ImportError` or :class:`OSError` when
    neither a TZPATH directory nor the ``tzdata`` package has it."""
    normal = os.path.normpath(key)
    if os.path.isabs(key) or len(normal) != len(key):
        raise ValueError(f"not a normalised relative time zone key: {key!r}")
    if not os.path.normpath(os.path.join(_BASE, normal)).startswith(_BASE):
        raise ValueError(f"time zone key outside the zoneinfo tree: {key!r}")
    # Read at each call, not imported: zoneinfo.reset_tzpath() replaces it.
    for directory in zoneinfo.TZPATH:
        path = os.path.join(directory, key)
        if os.path.isfile(path):
            with open(path, "rb") as file:
                return file.read()
    *package, name = key.split("/")
    resource = importlib.resources.files(".".join(["tzdata.zoneinfo", *package])).joinpath(name)
    return resource.read_bytes()


def holds_one_offset(data: bytes) -> bool:
    """Whether TZif ``data`` give one UTC offset for all time: no transitions in the version 1
    body nor in the version 2+ one, and a footer TZ string without DST rules (no ``,``; ZoneInfo
    refuses a DST name without rules). ZoneInfo answers every instant from the footer (or, with
    none, from the last local time type) when there are no transitions. :class:`ValueError`
    if ``data`` are not TZif."""
    try:
        version, counts = _header(data, 0)
        if counts[3]:  # timecnt
            return False
        at = _HEADER.size + _body_size(counts, time_size=4)
        if version == b"\0":  # version 1: no second body, no footer
            if len(data) < at:
                raise ValueError("truncated TZif data")
            return True
        _, counts = _header(data, at)
        if counts[3]:
            return False
        at += _HEADER.size + _body_size(counts, time_size=8)
    except struct.error as err:
        raise ValueError(f"truncated TZif data: {err}") from err
    end = data.find(b"\n", at + 1)
    if data[at : at + 1] != b"\n" or end < 0:
        raise ValueError("TZif data without a footer (truncated?)")
    return b"," not in data[at + 1 : end]


def _header(data: bytes, at: int) -> tuple[bytes, tuple[int, ...]]:
    magic, version, *counts = _HEADER.unpack_from(data, at)
    if magic != _MAGIC:
        raise ValueError("not TZif data")
    return version, tuple(counts)


def _body_size(counts: tuple[int, ...], time_size: int) -> int:
    isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt = counts
    return (
        timecnt * (time_size + 1)
        + typecnt * 6
        + charcnt
        + leapcnt * (time_size + 4)
        + isstdcnt
        + isutcnt
    )
