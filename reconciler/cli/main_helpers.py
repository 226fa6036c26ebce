"""Small helpers shared by the command modules."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


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
