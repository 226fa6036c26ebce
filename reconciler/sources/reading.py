"""Reading one definition file, bounded and confined.

Contract of ``read_file(path, limit=..., root=...)``:

- Links are followed (a ConfigMap's ``..data`` links, git-sync's ``--link``, a link between two
  files of one folder), but the file finally read must lie inside ``root``, a *resolved* path
  (the source's folder as given, or the git worktree, with its own links resolved). A link that
  leads outside is refused without reading anything through it: its target's content, type
  and size are never looked at. The check is made on the opened descriptor
  (``/proc/self/fd``), so a link swapped between the check and the read cannot slip through.
  A link that cannot be followed at all (``readlink`` refused: ``/proc/1/cwd`` of a process
  crontask may not trace) is refused too: where it leads is not known (:func:`resolved`).
- Only regular files are opened: a FIFO, a socket or a device is refused from ``stat`` alone
  (opening some devices has effects; opening a FIFO would block). The descriptor is opened
  with ``O_NONBLOCK`` anyway, in case a file is replaced by a FIFO between ``stat`` and
  ``open``.
- A file over ``limit`` bytes is refused from ``fstat`` of the opened descriptor, without a
  read; and since a file may grow between ``fstat`` and ``read``, at most ``limit + 1`` bytes
  are ever read.

Raises ``FileNotFoundError`` when the file is gone (a deletion; ``NotADirectoryError`` when a
file stands where a folder on its path was) and ``Unreadable`` with a message fit for a
definition error otherwise: a link to nothing (or through a file) is such an error, and so is
an open, ``fstat`` or read that fails (an I/O error), so that its file's tasks keep their last
good definitions.

``read_regular(path, at_most=...)`` is the same guarded open for a folder crontask writes
itself (the API's tasks): only a regular file, checked from ``lstat`` and again on the
descriptor opened ``O_NONBLOCK``, and a link is never followed (``O_NOFOLLOW``): crontask
makes none there.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from reconciler.core.desired import DefinitionError, Location
from reconciler.sources.limits import format_size

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
_CHUNK = 1024 * 1024
_PROC_FD = Path("/proc/self/fd")


class Unreadable(Exception):
    """A file that is not read; the message says why (and never quotes its content), and
    ``about``, when set, what its error is about (``DefinitionError.about``)."""

    def __init__(self, message: str, about: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.about = about

    def error(self, where: Location) -> DefinitionError:
        """The definition error of the file not read, at ``where``."""
        return DefinitionError(where, self.message, about=self.about)


# What a file over the limit is refused for, whatever its size: a file that grows while over
# it (an appended log) stays broken the same way, and is not told again at each change.
OVER_LIMIT = "over the limit (--max-file-size)"


UNFOLLOWED = "a symbolic link that cannot be followed: not read"


def resolved(path: Path | str) -> str | None:
    """``path`` with every link resolved, as ``os.path.realpath`` makes it; None if a link on
    its way cannot be read. Python 3.11 and 3.12 raise the error of ``readlink`` (EACCES for
    ``/proc/1/cwd``; 3.13 keeps such a link as a plain name): None is "where it leads is not
    known", which every caller takes as "leads outside": not entered, not read."""
    try:
        return os.path.realpath(path)
    except OSError:
        return None


def resolve_root(root: Path) -> str | None:
    """``root`` with every link resolved: what the files read under it must stay inside; None
    if it cannot be resolved (:func:`resolved`), under which nothing is read."""
    return resolved(root)


def read_file(
    path: Path, *, limit: int, root: str | None, root_label: str
) -> tuple[bytes, tuple[int, int, int, int]]:
    """The bytes of ``path``, and the (mtime_ns, ctime_ns, size, inode) of the file they were
    read from (see the module docstring). ``root_label`` names ``root`` in messages (the folder
    as the user gave it, or "the repository"); a ``root`` of None (one that cannot be
    resolved) lets nothing be read."""
    if root is None:
        raise Unreadable(f"a symbolic link on the way to {root_label} cannot be followed: not read")
    try:
        before = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):  # ENOTDIR: a file on the way
        _dangling(path, root, root_label)
        raise
    except OSError as err:
        raise Unreadable(f"cannot read: {err.strerror or err}") from None
    if not stat.S_ISREG(before.st_mode):
        _confined(path, root, root_label)
        raise Unreadable(f"not a regular file ({_kind(before.st_mode)}): not read")
    try:
        fd = os.open(path, _FLAGS)
    except (FileNotFoundError, NotADirectoryError):  # ENOTDIR: a file on the way
        _dangling(path, root, root_label)
        raise
    except OSError as err:
        raise Unreadable(f"cannot read: {err.strerror or err}") from None
    try:
        opened_at = _opened_path(fd, path)
        if opened_at is None:
            raise Unreadable(UNFOLLOWED)
        if not within(opened_at, root):
            raise Unreadable(_outside(root_label))
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise Unreadable(f"not a regular file ({_kind(opened.st_mode)}): not read")
        if opened.st_size > limit:
            raise Unreadable(
                f"file is {opened.st_size} bytes, over the limit of {format_size(limit)} "
                "(--max-file-size): not read",
                OVER_LIMIT,
            )
        data = _read_at_most(fd, limit + 1)
    except OSError as err:
        # An I/O error (a failing disk, a file of /proc) is its file's error: it keeps its
        # tasks, and the other files are read.
        raise Unreadable(f"cannot read: {err.strerror or err}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise Unreadable(
            f"file grew past the limit of {format_size(limit)} (--max-file-size) while it "
            "was read: not read",
            OVER_LIMIT,
        )
    return data, (opened.st_mtime_ns, opened.st_ctime_ns, opened.st_size, opened.st_ino)


def read_regular(path: Path, *, at_most: int) -> tuple[bytes, int]:
    """At most ``at_most`` bytes of ``path``, and its size, if it is a regular file; a link is
    not followed but refused. Raises ``FileNotFoundError`` or ``NotADirectoryError`` when there
    is no file, and ``Unreadable`` otherwise (a FIFO, a socket, a device, a folder or a link,
    from ``lstat`` alone; an open or a read that fails)."""
    try:
        before = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except OSError as err:
        raise Unreadable(f"cannot read: {err.strerror or err}") from None
    if not stat.S_ISREG(before.st_mode):
        raise Unreadable(f"not a regular file ({_kind(before.st_mode)}): not read")
    try:
        # O_NOFOLLOW and O_NONBLOCK: a link or a FIFO put there since the lstat never blocks.
        fd = os.open(path, _FLAGS | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except OSError as err:
        raise Unreadable(f"cannot read: {err.strerror or err}") from None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise Unreadable(f"not a regular file ({_kind(opened.st_mode)}): not read")
        data = _read_at_most(fd, at_most)
    except OSError as err:
        raise Unreadable(f"cannot read: {err.strerror or err}") from None
    finally:
        os.close(fd)
    return data, max(opened.st_size, len(data))


def within(real: str, root: str) -> bool:
    """Whether the resolved path ``real`` is ``root`` or lies under it."""
    if real == root:
        return True
    return real.startswith(root if root.endswith(os.sep) else root + os.sep)


def _opened_path(fd: int, path: Path) -> str | None:
    """Where the file open as ``fd`` really is. /proc tells the truth about the descriptor;
    without /proc, resolving ``path`` again is the best there is (None if it cannot be)."""
    try:
        found = os.readlink(_PROC_FD / str(fd))
    except OSError:
        return resolved(path)
    return found.removesuffix(" (deleted)")


def _read_at_most(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = os.read(fd, min(left, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _dangling(path: Path, root: str, root_label: str) -> None:
    """A link that leads to nothing is an error of its file, not a deleted file: replacing a
    task file with one (a typo in its target, a file it names that the commit lacks, a path
    through a file: ``notes.txt/x``) must not remove its tasks. Whether its target is missing
    outside ``root`` says nothing more."""
    if not os.path.islink(path):
        return
    _confined(path, root, root_label)
    raise Unreadable("a symbolic link to nothing: not read")


def _confined(path: Path, root: str, root_label: str) -> None:
    """Raise ``Unreadable`` unless ``path`` resolves inside ``root``: a link that leads out,
    or one that cannot be followed, is refused before anything is said of its target."""
    real = resolved(path)
    if real is None:
        raise Unreadable(UNFOLLOWED)
    if not within(real, root):
        raise Unreadable(_outside(root_label))


def _outside(root_label: str) -> str:
    return f"a symbolic link that leads outside {root_label}: not read"


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):  # only from lstat (read_regular): read_file follows links
        return "a symbolic link"
    return "not a file"
