"""Where a byte of a file is, as an editor shows it: line and column, the column counted in
characters. For the first byte that is not UTF-8 (the text before it is): a column counted in
bytes sent a user to the wrong place on any line with an ``é`` before it."""

from __future__ import annotations

BOM = "\ufeff"


def byte_place(data: bytes, at: int) -> tuple[int, int]:
    """The 1-based line and column of ``data[at]``; ``data[:at]`` must be UTF-8. A byte order
    mark at the start is not counted: the YAML reader drops it, and an editor does not show it."""
    start = data.rfind(b"\n", 0, at) + 1
    before = data[start:at].decode("utf-8")
    if start == 0:
        before = before.removeprefix(BOM)
    return data.count(b"\n", 0, at) + 1, len(before) + 1
