"""What a root of the directory source (``files``) is now, as its rules need to know: missing,
a link to a folder that leads elsewhere, or suddenly empty (``guard_empty``: its tasks are held,
its error of kind ``ErrorKind.HOLD``, in the words of ``hold_message``)."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.core.desired import DefinitionError, ErrorKind, Location
from reconciler.sources.filestate import GONE
from reconciler.sources.reading import resolved, within
from reconciler.sources.walk import iter_yaml_files

HOLD = "no task file here any more"  # how a held root's error starts (its kind says it is one)
GONE_ROOT = "path does not exist"


def missing(root: Path) -> str | None:
    """Why ``root`` is not read if it cannot be found (:data:`GONE_ROOT` if it is not there);
    None if it is there."""
    try:
        os.stat(root)
    except OSError as err:
        if err.errno in GONE:
            return GONE_ROOT
        return f"path cannot be read: {err.strerror or err}"
    return None


def yields_nothing(root: Path, *, for_root: bool) -> bool:
    """Whether ``root`` yields no file now for a file gone under it (``for_root``: the root
    itself). A root that was a folder and is now a file (a commit that replaced tasks/ with a
    file named tasks) yields that file: for the files of the folder, it yields nothing."""
    # os.path.isdir, not Path.is_dir: on 3.11 that raises when the root cannot be looked at.
    if not (for_root or os.path.isdir(root)):
        return True
    return next(iter_yaml_files(root), None) is None


def hold_message(kept: int, revision: str | None, *, gone: bool = False) -> str:
    """The error of a root whose ``kept`` tasks are held (``revision``: of the git source;
    ``gone``: the root itself is not there, whose tasks stay whatever --allow-empty says, as
    a path not there is not an empty one). The same words whichever sees it first, a rescan or
    the events of its files, so that one is not logged resolved as the other is logged."""
    if gone:
        why = f": {GONE_ROOT}{' in this revision' if revision else ''}"
        why += f"; {'it stays' if kept == 1 else 'they stay'} until it is back"
    elif revision is None:
        why = " (an unmounted volume or a folder moved away?); --allow-empty lets an empty "
        why += "folder remove them"
    else:
        why = " in this revision; --allow-empty lets a revision without them remove them"
    return f"{HOLD}: keeping {'its task' if kept == 1 else f'the {kept} tasks it defined'}{why}"


def hold_error(where: Location, kept: int, *, gone: bool = False) -> DefinitionError:
    """The error of the root at ``where`` whose ``kept`` tasks are held (:func:`hold_message`):
    a hold by its kind, which a refresh tests, not by its words, which another error's (an
    OS's message, a path's) could start with."""
    return DefinitionError(
        where, hold_message(kept, where.revision, gone=gone), kind=ErrorKind.HOLD
    )


def leads_within(link: Path, inside: str | None) -> bool:
    """Whether ``link`` leads to a folder that exists under the resolved path ``inside`` (None:
    a root that cannot be resolved, under which nothing is). A link that cannot be followed
    (``reading.resolved``) leads nowhere within: it is not entered, as one that leads out."""
    real = resolved(link)
    return real is not None and inside is not None and os.path.isdir(real) and within(real, inside)


def is_within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True
