"""Where ``crontask run``'s state directory may be: not where the folders it reads as task
files would read it. The tasks the API stores (``api-tasks/NS/NAME.yaml``), the git checkout and
the kept files are YAML: read as task files of a folder too, each API task was a conflict of
two sources (its ``POST`` answered ``409 ... defined by file source``) and dropped. A hidden
folder on the way (the default ``.crontask``) is not read; nor is a linked folder (the walk does
not enter one), so paths are compared resolved."""

from __future__ import annotations

import os
from pathlib import Path


def read_as_tasks(paths: list[str], state_dir: Path) -> str | None:
    """The first of ``paths`` whose folder walk would reach ``state_dir``; None if none would."""
    if (real := resolved(state_dir)) is None:  # a link on its way cannot be read: not read
        return None
    state = Path(real)
    for path in paths:
        if (given := resolved(path)) is None:
            continue
        root = Path(given)
        if (state != root and root not in state.parents) or os.path.isfile(root):
            continue  # a task file given is read alone: a state dir there is refused as no folder
        if not any(part.startswith(".") for part in state.relative_to(root).parts):
            return path
    return None


def resolved(path: Path | str) -> str | None:
    """As ``sources.reading.resolved`` (None if a link on the way cannot be read: Python 3.11's
    realpath raises EACCES for ``/proc/1/cwd``), without its imports: this is checked at start,
    before the heavy ones."""
    try:
        return os.path.realpath(path)
    except OSError:
        return None


def refusal(path: str, state_dir: Path) -> str:
    return (
        f"--state-dir {state_dir} is inside {path}, a folder crontask reads task files from: "
        "the tasks the API stores in it would be read as task files too; give a state dir "
        "outside it, or a hidden one (a name starting with '.', as the default .crontask)"
    )
