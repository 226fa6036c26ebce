"""Deleting a tree the git source wrote (a worktree, a bare repository), whatever a commit put
in it.

Why not ``shutil.rmtree``: on Python 3.11 it recursed, and a commit can nest folders past the
recursion limit (a RecursionError, not an OSError). Why not a walk by whole paths (as this was
before): a commit's folders may nest within PATH_MAX below the worktree but past it below the
state directory (git checks such a commit out, working relative to the worktree), and every
``scandir``/``unlink`` of such a path failed with ENAMETOOLONG.

So each entry is deleted relative to its folder's descriptor, as ``shutil.rmtree``'s fd-based
walk does, without recursion and with at most two folder descriptors open (plus the one
``os.scandir`` takes for a moment), whatever the depth:

- a folder is opened ``O_DIRECTORY | O_NOFOLLOW`` by name, relative to its parent: a link is
  removed, never followed (one to ``/`` must not delete the machine);
- the walk climbs back through ``..`` and checks that it reached the folder it came from (by
  ``st_dev``/``st_ino``): a folder moved meanwhile is an OSError, never a deletion elsewhere;
- an error names one entry (the name given to the call that failed), never the 4 KB path.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(top: Path) -> None:
    """Delete ``top``: a file or a link (never followed) is unlinked, a folder emptied and
    removed. Raises OSError (FileNotFoundError if ``top`` is missing)."""
    if not stat.S_ISDIR(os.lstat(top).st_mode):
        top.unlink()
        return
    _empty(os.open(top, _OPEN_DIR))
    top.rmdir()


def _empty(fd: int) -> None:
    """Delete everything in the folder open as ``fd`` (closed on return), depth first."""
    # The folders between ``top`` and ``fd``: each one's name, and the identity of its parent
    # (checked when the walk climbs back to it).
    below: list[tuple[str, tuple[int, int]]] = []
    try:
        while True:
            child = _unlink_files_until_folder(fd)
            if child is not None:
                identity = _identity(fd)
                next_fd = os.open(child, _OPEN_DIR, dir_fd=fd)
                os.close(fd)
                fd = next_fd
                below.append((child, identity))
                continue
            if not below:
                return
            name, identity = below.pop()
            parent = _parent(fd, identity)
            os.close(fd)
            fd = parent
            os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)


def _unlink_files_until_folder(fd: int) -> str | None:
    """Unlink the files and links in the folder ``fd``, up to its first sub-folder: that one's
    name (None once there is none left). Folders emptied and removed are not listed again."""
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                return entry.name
            os.unlink(entry.name, dir_fd=fd)
    return None


def _parent(fd: int, expected: tuple[int, int]) -> int:
    """The folder above ``fd``, opened through ``..``; OSError unless it is the one the walk
    came down from (a folder moved meanwhile would take the walk elsewhere)."""
    parent = os.open("..", _OPEN_DIR, dir_fd=fd)
    if _identity(parent) != expected:
        os.close(parent)
        raise OSError(errno.ESTALE, "a folder moved while its tree was being deleted")
    return parent


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino
