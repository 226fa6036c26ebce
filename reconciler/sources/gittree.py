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
- an error names one entry (the name given to the call that failed), never the 4 KB path;
- a folder on another filesystem than ``top`` (a mount point someone made inside an old
  state folder) is left alone, with what is mounted on it: the rest is deleted, and the call
  ends with an OSError naming it (the caller warns), never a deletion of that filesystem's files;
- ``stopped`` (crontask is stopping) is asked between entries: when it says so, the walk ends
  with ``Stopped`` and leaves the rest (a caller deletes what it renamed first next time).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Stopped(InterruptedError):
    """``stopped`` said so: the walk ended with part of the tree left."""


def _never() -> bool:
    return False


def remove_tree(top: Path, stopped: Callable[[], bool] = _never) -> None:
    """Delete ``top``: a file or a link (never followed) is unlinked, a folder emptied and
    removed. Raises OSError (FileNotFoundError if ``top`` is missing; ``Stopped``; one naming a
    mount point left inside)."""
    if not stat.S_ISDIR(os.lstat(top).st_mode):
        top.unlink()
        return
    mounted = _empty(os.open(top, _OPEN_DIR), stopped)
    if mounted is not None:
        raise OSError(errno.EXDEV, "another filesystem is mounted there: left alone", mounted)
    top.rmdir()


def _empty(fd: int, stopped: Callable[[], bool]) -> str | None:
    """Delete everything in the folder open as ``fd`` (closed on return), depth first, but
    folders on another filesystem: the name of the first one left (None if none was)."""
    device = os.fstat(fd).st_dev
    # The folders between ``top`` and ``fd``: each one's name, the identity of its parent
    # (checked when the walk climbs back to it), and the names left in the parent (mounts,
    # or folders holding one: listed again, they must not be entered again).
    below: list[tuple[str, tuple[int, int], set[str]]] = []
    left: set[str] = set()  # in the folder ``fd``
    mounted: str | None = None
    try:
        while True:
            child = _unlink_files_until_folder(fd, left, stopped)
            if child is not None:
                identity = _identity(fd)
                next_fd = os.open(child, _OPEN_DIR, dir_fd=fd)
                if os.fstat(next_fd).st_dev != device:
                    os.close(next_fd)
                    left.add(child)
                    mounted = mounted or child
                    continue
                os.close(fd)
                fd = next_fd
                below.append((child, identity, left))
                left = set()
                continue
            if not below:
                return mounted
            name, identity, parent_left = below.pop()
            parent = _parent(fd, identity)
            os.close(fd)
            fd = parent
            if left:  # a mount below: this folder stays, and so do those above it
                parent_left.add(name)
            else:
                os.rmdir(name, dir_fd=fd)
            left = parent_left
    finally:
        os.close(fd)


def _unlink_files_until_folder(
    fd: int, left: set[str] | frozenset[str] = frozenset(), stopped: Callable[[], bool] = _never
) -> str | None:
    """Unlink the files and links in the folder ``fd``, up to its first sub-folder not in
    ``left``: that one's name (None once there is none left). Folders emptied and removed are
    not listed again. Raises ``Stopped`` between entries once ``stopped()``."""
    with os.scandir(fd) as entries:
        for entry in entries:
            if stopped():
                raise Stopped(errno.EINTR, "crontask is stopping")
            if entry.name in left:
                continue
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
