"""What a watcher's path says to the directory source: a file to re-read, or more.

Watch events (``watch``) name files to re-read. One naming a folder (made, moved or removed:
its files come without events of their own), a link (a ConfigMap's ``..data`` swapped) or a
file reached through a linked folder says more, and so does a task file in a folder that the
walk does not enter (too deep): ``files.DirectorySource`` then makes its refresh a full one.
One under a path past ``walk.MAX_PATH_FILES`` says nothing (``within_bound``).

A hint is the watcher's absolute path; ``roots`` are the source's paths as the user gave them.
These functions look at the disk (what a path is now), but read no file and keep nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from stat import S_ISLNK

from reconciler.sources.rootpaths import closest_root
from reconciler.sources.walk import MAX_FOLDER_DEPTH, is_yaml_file


def within_bound(
    roots: Sequence[Path], past: Collection[Path], hints: Collection[str]
) -> list[str]:
    """The ``hints`` not under one of the roots ``past`` the bound (``walk.MAX_PATH_FILES``),
    nor under another root given inside one (its own: see ``rootpaths``). There an event reads
    nothing, neither its file (the path is not read) nor the path whole (1.2 s an event at
    100 001 files, for a log appended twice a second): the resync sees the path back. A hint
    that names a root itself is kept: the root was swapped (git-sync's link to a commit that
    removed the extra files), and the path is read again at once."""
    if not past:
        return list(hints)
    absolute, over = [r.absolute() for r in roots], {r.absolute() for r in past}
    named = {str(root) for root in absolute}
    return [h for h in hints if h in named or closest_root(absolute, Path(h)) not in over]


def known_path(roots: Sequence[Path], hint: Path) -> Path | None:
    """A watcher's (absolute) path, spelled the way the user gave its root, or None if it
    is not a file this source reads."""
    for root in roots:
        if hint == root.absolute() and is_yaml_file(hint):
            return root
        try:
            relative = hint.relative_to(root.absolute())
        except ValueError:
            continue
        hidden = any(p.startswith(".") for p in relative.parts)
        # A folder the walk does not enter (a link) is one the watcher may report from.
        if is_yaml_file(hint) and not hidden and not _through_a_linked_folder(root, relative):
            return root / relative
    return None


def says_more(roots: Sequence[Path], hint: Path, folders: Callable[[], set[str]]) -> bool:
    """Whether a watcher's (absolute) path says more than "re-read this file": it is a
    folder under a root (made or moved in: its files come without events), a link (a
    ConfigMap's ``..data`` swapped), a file reached through a linked folder, or a path
    that files were read under and is no folder now (a folder removed, moved away or made
    a link to a file: one of ``folders``, those of the files known, made once per refresh:
    10 000 hints of removed temporary files against 10 000 files cost a set, not 10^8
    comparisons)."""
    for root in roots:
        try:
            relative = hint.relative_to(root.absolute())
        except ValueError:
            continue
        if not relative.parts:
            return False  # the root itself: rescanned anyway
        hidden = any(p.startswith(".") for p in relative.parts)
        if os.path.islink(hint) and not os.path.isfile(hint):
            return True  # to a folder, or to nothing: ``..data``, a folder made a link
        if os.path.isdir(hint):
            return not hidden
        if is_yaml_file(hint):
            return not hidden and _through_a_linked_folder(root, relative)
        if os.path.lexists(hint) and not os.path.islink(hint):
            return False  # a file of no interest (notes.txt, an editor's temporary file)
        # Files were read under it: a folder removed, moved away, or made a link to a file
        # (``mv team /elsewhere; ln -s notes.txt team`` names only ``team``).
        return str(root / relative) in folders()
    return False


def too_deep(roots: Sequence[Path], hint: Path) -> bool:
    """Whether a watcher's path is a YAML file in a folder that the walk does not enter
    (more than ``MAX_FOLDER_DEPTH`` levels below its root)."""
    if not is_yaml_file(hint):
        return False
    for root in roots:
        try:
            relative = hint.relative_to(root.absolute())
        except ValueError:
            continue
        hidden = any(p.startswith(".") for p in relative.parts)
        return not hidden and len(relative.parts) - 1 > MAX_FOLDER_DEPTH
    return False


def _through_a_linked_folder(root: Path, relative: Path) -> bool:
    """Whether ``root / relative`` is reached through a symlinked folder below ``root``."""
    at = root
    for part in relative.parts[:-1]:
        at = at / part
        try:
            if S_ISLNK(os.lstat(at).st_mode):
                return True
        except OSError:
            return False  # gone: the reading says what there is
    return False
