"""The paths given on the command line to the commands that read task files: each is checked
before anything is read, a bad one said plainly (exit status 2), never a traceback."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from reconciler.cli.terminal import printable

NO_SUCH_PATH: Final = "no such file or directory"


def existing_paths(values: Sequence[str]) -> list[Path]:
    """Paths from the command line; one with nothing there (:func:`absent`) is a usage error,
    said plainly and escaped (a name may hold any byte but NUL). So is an empty one, which
    ``Path`` would take for the current directory. A path that is there but cannot be looked
    at (a folder on its way without search permission, a link crontask may not follow) is
    given to the reading, which says so as the error of that path, as it does when that
    happens while crontask runs. A path given twice, relative and absolute, is read once, and
    one under another in the other spelling is spelled as the outer one
    (``rootpaths.one_spelling``)."""
    paths = [Path(v) for v in values]
    problems: dict[str, list[str]] = {}
    for value, path in zip(values, paths, strict=True):
        why = (absent(path) if value else NO_SUCH_PATH) or _not_utf8(path)
        if why is not None:
            problems.setdefault(why, []).append(printable(value) if value else "''")
    if problems:
        said = "; ".join(f"{why}: {', '.join(names)}" for why, names in problems.items())
        print(f"crontask: {said}", file=sys.stderr)
        raise SystemExit(2)  # what the user gave: a usage error
    if len(paths) < 2:  # nothing to compare: the sources' modules stay unloaded until read
        return paths
    from reconciler.sources.rootpaths import one_spelling

    return one_spelling(paths)


def _not_utf8(path: Path) -> str | None:
    # Every file under such a path is "not UTF-8: not read", and its watch fails for ever.
    try:
        os.fsencode(os.path.abspath(path)).decode("utf-8")
    except UnicodeDecodeError:
        return "not read: the path is not UTF-8 (rename it)"
    except OSError:  # the working folder is gone: absent() said so first
        pass
    return None


def absent(path: Path) -> str | None:
    """Why nothing is at ``path``: :data:`NO_SUCH_PATH` (nothing there, or a link to nothing)
    or a loop of links; None if something is there, even if it cannot be looked at (``stat``
    refused: ``Path.exists`` raises that on Python 3.11)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return NO_SUCH_PATH
    except OSError as err:
        return "a loop of symbolic links" if err.errno == errno.ELOOP else None
    return None
