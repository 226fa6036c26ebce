"""Small helpers shared by the command modules."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

from reconciler.sources.limits import DEFAULT_MAX_FILE_SIZE, format_size

_SIZE = re.compile(r"(\d{1,15})\s*([a-z]*)", re.IGNORECASE)
_SIZE_UNITS = {
    **{"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3},
    **{"ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3},
}
MAX_FILE_SIZE_RANGE = (1024, 1024**3)  # 1 KiB .. 1 GiB


def existing_paths(values: Sequence[str]) -> list[Path]:
    """Paths from the command line; a missing one is a usage error, said plainly."""
    paths = [Path(v) for v in values]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"crontask: no such file or directory: {', '.join(missing)}")
    return paths


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *rows]
    ]
    return "\n".join(lines)


def add_state_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".crontask"),
        help="where the run history and API-created tasks live (default: ./.crontask)",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="run store URL instead of the state dir's SQLite file, "
        "e.g. sqlite:////var/lib/crontask/runs.db or postgresql+psycopg://user@host/db",
    )


def parse_size(text: str) -> int:
    """Bytes in ``512KiB``, ``2MiB``, ``1Mi``, ``1MB`` (decimal), ``1048576``; ValueError with
    a message for the user otherwise."""
    found = _SIZE.fullmatch(text.strip())
    unit = found.group(2).lower() if found else ""
    if not found or unit not in _SIZE_UNITS:
        raise ValueError(f"invalid size {text!r} (examples: 512KiB, 2MiB, 1048576)")
    return int(found.group(1)) * _SIZE_UNITS[unit]


def size_arg(text: str) -> int:
    try:
        size = parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    low, high = MAX_FILE_SIZE_RANGE
    if not low <= size <= high:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range ({format_size(low)} to {format_size(high)})"
        )
    return size


def add_max_file_size_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-file-size",
        type=size_arg,
        default=DEFAULT_MAX_FILE_SIZE,
        metavar="SIZE",
        help="refuse definition files larger than this, unread (default: 1MiB; e.g. 512KiB, "
        "2MiB); a larger file is a definition error that keeps its tasks' last good version",
    )
