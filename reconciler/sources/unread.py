"""The places of the directory source (``files``) not read, and the files once read under them.

A file read before that a scan no longer lists is gone, unless it lies under a place not read
(a root gone, a folder that cannot be listed, a link not entered, a submodule): then its tasks
are kept. A pass asks that of every such file, so it is a set lookup per folder on the file's
path (:func:`under_any`), not a comparison with every place: 1 500 folders turned into
submodules took 26 s a refresh.

A folder of files read before that is now a link to a file (``team -> notes.txt``), or to
anything but a folder, is such a place too (:func:`links_to_files`). The walk sees a file of
no interest there, and the files once under it fail with ENOTDIR, as files gone would: a commit
must not remove their tasks by turning their folder into a link, whatever the link leads to.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from stat import S_ISDIR, S_ISLNK

from reconciler.sources.rootpaths import closest_root
from reconciler.sources.walk import MAX_FOLDER_DEPTH, is_yaml_file

LINK_TO_FILE = (
    "a symbolic link to a file, not a folder: not entered; the tasks of files once here are kept"
)
# The errors of the places a scan does not read (``files.DirectorySource.scan``): folders too
# deep, folders that cannot be listed, links to a folder elsewhere or to nothing, links to files.
WALK_ERRORS = (
    f"folder nested more than {MAX_FOLDER_DEPTH} levels deep (the limit): not read",
    "folder cannot be listed: not read; the tasks of its files are kept",
    "a symbolic link to a folder outside this path, or to nothing: not entered; the tasks of "
    "files once here are kept",
    LINK_TO_FILE,
)


def under_any(path: Path, places: Collection[str]) -> bool:
    """Whether ``path`` is one of ``places`` (spelled: ``str`` of each) or lies under one, by
    spelling (as ``rootstate.is_within``), in O(depth of ``path``): on strings, as making and
    hashing a Path per folder cost half a second for 10 000 files."""
    if not places:
        return False
    text = str(path)
    while text not in places:
        parent = os.path.dirname(text) or "."  # "a" lies in ".", as Path("a").parents says
        if parent == text:
            return False
        text = parent
    return True


def folders_up(path: Path, root: Path) -> Iterator[Path]:
    """``path``, then each folder it lies in, up to ``root`` (included), made one by one:
    the caller mostly stops at the first."""
    yield path
    if path == root:
        return
    for folder in path.parents:
        yield folder
        if folder == root:
            return


def links_to_files(
    roots: Sequence[Path], files: Iterable[Path], listed: Collection[Path], unread: list[Path]
) -> list[Path]:
    """The links below the roots that are no folder (to a file, a FIFO...) and stand where a
    folder of ``files`` (read before) was: on the way to one not ``listed`` by this scan, nor
    under a place already ``unread``. Each folder is looked at once per scan."""
    places = {str(p) for p in unread}
    found: set[Path] = set()
    seen: dict[Path, str] = {}  # folder -> what it is now (_what), this scan
    # Per folder, not per file: a commit deleting 10 000 files of one folder asks it once.
    for folder in {path.parent for path in files if path not in listed}:
        if under_any(folder, places) or not _may_be_behind_a_link(folder):
            continue  # one lstat: a refresh while a root is held asks it of every folder
        root = closest_root(roots, folder)
        if root is None:
            continue
        # Down from the root to the first thing on the way that is no folder entered: under a
        # link to a folder the walk did not enter either, and links to folders have their rule
        # (files.scan); a link to no folder is the place the files' tasks are kept under.
        at = root
        for part in folder.relative_to(root).parts:
            at = at / part
            if at not in seen:
                seen[at] = _what(at)
            if seen[at] == _LINK_TO_FILE:
                found.add(at)
            if seen[at] != _FOLDER:
                break
    return sorted(found)


_FOLDER, _LINK_TO_FILE, _OTHER = "folder", "link to no folder", "other"


def _may_be_behind_a_link(folder: Path) -> bool:
    """Whether a link may stand on the way to ``folder``, from one ``lstat``: not if it is a
    folder (a link to a folder on the way has its rule), nor if it is gone (the common case:
    a folder deleted, a root emptied); if a file stands on the way (ENOTDIR), or ``folder``
    is no folder (a link itself), the way is walked down."""
    try:
        return not S_ISDIR(os.lstat(folder).st_mode)
    except FileNotFoundError:  # gone; a dangling link on the way is the walk's (_what)
        return False
    except OSError:
        return True


def _what(path: Path) -> str:
    """What ``path`` is now, as ``links_to_files`` needs to know, from one ``lstat``."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # gone, or a folder on the way is no more: nothing to keep here
        return _OTHER
    if not S_ISLNK(mode):
        return _FOLDER if S_ISDIR(mode) else _OTHER
    # A link the walk reads as a task file (``team.yaml``) is one: its errors are its own. A
    # link to nothing is the walk's too ("to a folder outside this path, or to nothing"), not
    # one "to a file". Only the rest is a link to a file (a FIFO...) where a folder was.
    if is_yaml_file(path) or not os.path.exists(path) or os.path.isdir(path):
        return _OTHER
    return _LINK_TO_FILE
