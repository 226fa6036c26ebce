"""The state directory's rules. It holds run outputs (which may hold secrets), the API's tasks
(commands crontask will run) and git checkouts, so only crontask's own user may read or change
what is in it.

- What crontask creates there is private: directories 0700, the SQLite file 0600, made so
  before SQLite opens it (SQLite gives its ``-wal`` and ``-shm`` files the database file's
  mode). The umask is left alone: task commands inherit it.
- A writer (``crontask run``) refuses a state directory (or the folder of a ``--db
  sqlite:///`` file) that is a symbolic link, is not a directory, is not owned by the
  process's effective uid, or that others, or a group other than the process's own, may
  write: another user could have placed it, with a ``runs.db`` link to follow or task files
  in ``api-tasks/`` to run. The process's own group may write it: Kubernetes gives a pod's
  volumes to its ``fsGroup`` (on a PersistentVolume, again at every start), and on a host
  each user's primary group is, by default, that user alone. An existing
  state directory of ours that others may read is made 0700, with one warning line.
- So must every folder on its path (as OpenSSH's StrictModes): each one owned by root or by
  the process's effective uid, and none writable by others (or by a group other than the
  process's own) unless sticky, as ``/tmp`` is. Otherwise another user could rename the
  state directory away and put one of their own at its name, which crontask reads at every
  pass. Both the path as given and the one its links lead to are walked. The one exception
  is a mount point (a volume's root: a Kubernetes ``emptyDir`` is root's and mode 0777 or
  2777), accepted with a warning line: in a pod only that pod's containers mount it.
- The database file likewise: refused if it is a link or not a regular file of ours (it is
  never resolved, and created with ``O_NOFOLLOW``); made 0600 if others may read it.
- Each is checked and made private through one descriptor of what is there (a link itself,
  never its target), so a name swapped meanwhile cannot turn the ``chmod`` on another file.

- One writer at a time: a second ``crontask run`` on the same state directory is refused at
  start (``lock``: its lock file and, where the file system can, the directory itself, so
  that a lock file deleted while held lets no second one in). Two would check out git
  revisions over each other's, and delete the files of the other's runs.

The same rule guards other files crontask trusts: ``others_may_write`` (another owner than
root or this user, or writable by others or a foreign group) and ``check_ancestors`` (the
folders on a path) are used by ``secretfile`` (secret and auth files: refused) and
``sources.rootpaths`` (tasks folders: warned of). A message naming a folder on the path ends
with what to do (``chown``, or ``chmod go-w FOLDER``).

Readers (``crontask runs``) use none of this: they may read another user's store if its modes
let them, and create or change nothing there.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shlex
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

log = logging.getLogger("crontask")

PRIVATE_DIR: Final = 0o700
PRIVATE_FILE: Final = 0o600
# The folders of the state directory that hold what crontask will run.
_SUBDIRS: Final = ("api-tasks", "git", "kept-files")
LOCK_FILE: Final = "lock"
# The state directories this process holds, and the descriptor of each one's lock.
_locks: dict[str, int] = {}
# And of each one's directory, locked too where its file system can (``_lock_dir``).
_dir_locks: dict[str, int] = {}
# What flock on a directory says where its file system cannot lock one (some NFS).
_NO_DIR_LOCKS: Final = frozenset({errno.EBADF, errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP})
# The instance each one's lock named when this process took it (see ``hold``).
_previous: dict[str, str] = {}
# A lock file holds a pid and an instance id (host name, numbers, token): well under this.
_LOCK_MAX: Final = 1024
_SHARED: Final = stat.S_IRWXG | stat.S_IRWXO
_SQLITE_SIDE_FILES: Final = ("-wal", "-shm", "-journal")
# The mount points others may write that this process has warned of.
_warned: set[Path] = set()
# How /proc/self/mountinfo writes a space, tab, newline or backslash in a path.
_OCTAL: Final = re.compile(r"\\([0-7]{3})")


class Refused(Exception):
    """A state directory or database file crontask will not use; the message says why.
    ``reason`` is the message without its ``refusing WHAT PATH:`` head, for a caller that
    names the path its own way (``secretfile``, ``sources.rootpaths``)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = message if reason is None else reason


def _refused(what: str, path: Path, reason: str) -> Refused:
    return Refused(f"refusing {what} {path}: {reason}", reason)


def others_may_write(st: os.stat_result) -> str | None:
    """Why a user other than root and this process's may change the file or folder ``st``
    describes (its owner is another, or others or a group other than the process's own may
    write it), None if no one else may: the rule of this module, for other files crontask
    trusts (``secretfile``, ``sources.rootpaths``). Sticky or not: sticky keeps others from
    moving an entry, not from adding one."""
    if st.st_uid not in (0, os.geteuid()):
        return f"it is owned by uid {st.st_uid}, neither root nor this user (uid {os.geteuid()})"
    return group_or_others_may_write(st)


def group_or_others_may_write(st: os.stat_result) -> str | None:
    """The half of :func:`others_may_write` about the mode alone."""
    if _writable_by_others(st):
        return f"group or others may write it (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def others_may_write_it(st: os.stat_result) -> str | None:
    """Whether everyone may write it (not only a group)."""
    if stat.S_IMODE(st.st_mode) & stat.S_IWOTH:
        return f"anyone may write it (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _writable_by_others(st: os.stat_result) -> bool:
    # The process's own group may write: a pod's fsGroup, a host user's own group.
    mode = stat.S_IMODE(st.st_mode)
    return bool(mode & stat.S_IWOTH or (mode & stat.S_IWGRP and st.st_gid != os.getegid()))


def make_dirs(path: Path) -> None:
    """``mkdir -p path`` whose every created directory is 0700 (``Path.mkdir(parents=True)``
    gives the parents the default mode). Raises OSError, FileExistsError if ``path`` is there
    and not a directory."""
    missing: list[Path] = []
    at = Path(os.path.abspath(path))
    while at != at.parent and not os.path.lexists(at):
        missing.append(at)
        at = at.parent
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    if not missing and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a directory")


def prepare(state_dir: Path) -> None:
    """For a writer: ``state_dir`` made (0700) if missing, else checked as the module says and
    made 0700 if others may read it; so are its ``api-tasks`` and ``git`` folders if there.
    Raises :class:`Refused`, OSError."""
    check_ancestors(state_dir, "state directory")
    if not os.path.lexists(state_dir):
        make_dirs(state_dir)
    tightened = _check_dir(state_dir, "state directory", tighten=True)
    for name in _SUBDIRS:
        if os.path.lexists(state_dir / name):
            tightened += _check_dir(state_dir / name, "state directory", tighten=True)
    _warn(tightened, "state directory")


def lock(state_dir: Path) -> None:
    """Hold ``state_dir`` for this process until :func:`unlock` or its exit (however it ends:
    the kernel drops the ``flock``). Raises :class:`Refused` when another process holds it,
    naming its pid; OSError. Holding it twice is holding it once.

    The lock file says who holds it: its pid, then its instance once known (:func:`hold`).
    The instance it named before is kept until then: a process that dies in between must not
    make the next one forget whose runs may still be recorded ``running``.

    The directory itself is locked too (``_lock_dir``): a lock file deleted while held (a tmp
    cleaner, a hand's ``rm``) would otherwise let a second crontask in, with a new one. The
    file stays the lock crontask 0.5.0 and older take, and what names the holder."""
    key = os.path.abspath(state_dir)
    if key in _locks:
        return
    fd = _open_lock(state_dir / LOCK_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)[0][:32] or "unknown"
        os.close(fd)
        raise Refused(
            f"state directory {state_dir} is in use by another crontask (pid {holder}); "
            "give each its own --state-dir"
        ) from None
    try:
        directory = _lock_dir(state_dir)
    except BaseException:
        os.close(fd)
        raise
    try:
        previous = _holder(fd)[1]
        # The pid only names the holder to a crontask refused: on a full disk the lock is held
        # all the same, and the run store, opened next, says what is wrong more clearly.
        with contextlib.suppress(OSError):
            _write(fd, [str(os.getpid()), previous])
    except BaseException:
        os.close(fd)
        if directory is not None:
            os.close(directory)
        raise
    _locks[key] = fd
    if directory is not None:
        _dir_locks[key] = directory
    _previous[key] = previous


def _open_lock(path: Path) -> int:
    """The lock file's descriptor, made if missing. Without waiting (``O_NONBLOCK``: a FIFO
    put there would wait for a writer), and refused by name unless a regular file: what is
    read from and written to it is its holder."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    fd = os.open(path, flags, PRIVATE_FILE)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Refused(
            f"the state directory's lock {path} is not a regular file; remove it, and start again"
        )
    os.set_blocking(fd, True)
    return fd


def _lock_dir(state_dir: Path) -> int | None:
    """Lock the state directory's own descriptor (its name cannot be deleted while it holds
    files, unlike the lock file's): its descriptor, or None where the file system cannot lock
    a directory (some NFS), where the lock file alone holds, as before. Refused when another
    process holds it: one whose lock file was deleted, so it cannot be named."""
    fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Refused(
            f"state directory {state_dir} is in use by another crontask (its lock file was "
            "deleted, so its pid is unknown); give each its own --state-dir"
        ) from None
    except OSError as err:
        os.close(fd)
        if err.errno in _NO_DIR_LOCKS:
            return None
        raise
    return fd


def hold(state_dir: Path, instance: str) -> str | None:
    """Write ``instance`` in the lock of ``state_dir``, which this process holds (:func:`lock`),
    and return the instance the lock named before this process took it: the last one that held
    the state directory, which has ended since (it let go of the lock, or its process is
    gone). None when it named none, or this process does not hold ``state_dir``. A lock that
    cannot be written is said in the log: the next start cannot tell from it that this
    instance ended, nothing more."""
    key = os.path.abspath(state_dir)
    fd = _locks.get(key)
    if fd is None:
        return None
    try:
        _write(fd, [str(os.getpid()), instance])
    except OSError as err:
        log.warning(
            "could not write the state directory's lock",
            extra={"fields": {"path": str(state_dir / LOCK_FILE), "error": str(err)}},
        )
    return _previous.pop(key, "") or None


def _holder(fd: int) -> tuple[str, str]:
    """The pid and the instance a lock file names ("" where it names none)."""
    lines = os.pread(fd, _LOCK_MAX, 0).decode(errors="replace").splitlines()
    pid, instance = [*lines, "", ""][:2]
    return pid.strip(), instance.strip()


def _write(fd: int, lines: list[str]) -> None:
    # Written over the old text, then cut to length: the file never lacks both.
    data = "".join(f"{line}\n" for line in lines).encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))


def unlock(state_dir: Path) -> None:
    key = os.path.abspath(state_dir)
    _previous.pop(key, None)
    for held in (_locks, _dir_locks):
        fd = held.pop(key, None)
        if fd is not None:
            os.close(fd)


def holds(state_dir: Path) -> bool:
    """Whether this process holds ``state_dir`` (:func:`lock`): then no other crontask writes
    in it, and what no part of this process uses there may be deleted (``sources.gitkeys``)."""
    return os.path.abspath(state_dir) in _locks


def prepare_db(path: Path, contents: Callable[[Path], None] | None = None) -> None:
    """For a writer of the SQLite file ``path``: its folder made (0700) if missing, else
    checked as a state directory is (not made 0700: a ``--db`` folder is the user's); the file
    created 0600 if missing, without following a link; then the file and each of its
    ``-wal``/``-shm``/``-journal`` still there checked, and made 0600 if others may read them,
    but only once ``contents`` (the store's check of what the file holds) let it pass: another
    application's database is refused as it was found. Raises :class:`Refused`, OSError, and
    what ``contents`` raises."""
    check_ancestors(path.parent, "run store folder")
    if not os.path.lexists(path.parent):
        make_dirs(path.parent)
    _check_dir(path.parent, "run store folder", tighten=False)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with contextlib.suppress(FileExistsError):  # there already (or a link): checked below
        os.close(os.open(path, flags, PRIVATE_FILE))
    check_db(path, contents)


def check_db(path: Path, contents: Callable[[Path], None] | None = None) -> None:
    """``prepare_db``'s checks of the file ``path`` already there (nothing made) and of its
    ``-wal``/``-shm``/``-journal``: a run store file put back under a running crontask is
    taken only so. Raises :class:`Refused`, FileNotFoundError (nothing there), OSError."""
    tightened = _check_file(path, contents, one_name=True)
    for suffix in _SQLITE_SIDE_FILES:
        # Another process's SQLite creates and removes these at any moment (a ``-journal``
        # lives one transaction): one gone before it is held is not there.
        with contextlib.suppress(FileNotFoundError):
            tightened += _check_file(path.with_name(path.name + suffix))
    _warn(tightened, "run store")


def _check_dir(path: Path, what: str, *, tighten: bool) -> list[str]:
    """Raises :class:`Refused`; returns what was made private (``path (0755)``)."""
    with _held(path) as (fd, st):
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            raise _refused(what, path, "it is a symbolic link (give its target)")
        if not stat.S_ISDIR(st.st_mode):
            raise _refused(what, path, "it is not a directory")
        _check_owner(path, what, st)
        if _writable_by_others(st):
            raise _refused(
                what,
                path,
                f"group or others may write it (mode {mode:04o}); make it private (chmod 0700)",
            )
        if tighten and mode & _SHARED:
            return [_tighten(fd, path, mode, mode & PRIVATE_DIR)]
        return []


def check_ancestors(
    path: Path, what: str, *, follow: bool = False, foreign: list[str] | None = None
) -> None:
    """Every folder above ``path`` that is there, on its path as given (a link there is
    checked itself: whoever may replace it chooses where the path leads) and on the path its
    links lead to: refused as the module says, a mount point others may write warned of.
    ``follow``: also the folders of where ``path`` itself leads, when it is a link (a file
    read through it: a Kubernetes Secret's ``auth.yaml -> ..data/auth.yaml``). ``foreign``:
    a folder another user owns, or another group may write (not everyone), is said there
    instead of refused (a file crontask is given to read, not one it made: its owner may be
    the admin who gave it, with a umask of 002).
    Raises :class:`Refused`, OSError."""
    given = Path(os.path.abspath(path))
    chains = [given, Path(os.path.realpath(given.parent)) / given.name]
    if follow:
        chains.append(Path(os.path.realpath(given)))
    seen: set[tuple[int, int]] = set()  # each folder once, whichever name reached it
    for chain in chains:
        for folder in reversed(chain.parents):  # "/" first: what is below it is reached through it
            try:
                st = os.lstat(folder)
            except (FileNotFoundError, NotADirectoryError):
                break  # nor anything below it: made by this process (0700), or an error later
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                _check_ancestor(path, folder, what, st, foreign)


def _check_ancestor(
    path: Path, folder: Path, what: str, st: os.stat_result, foreign: list[str] | None
) -> None:
    if st.st_uid not in (0, os.geteuid()) and foreign is not None:
        foreign.append(f"{folder}, on its path, is owned by uid {st.st_uid}")
    elif st.st_uid not in (0, os.geteuid()):
        raise _refused(
            what,
            path,
            f"{folder}, on its path, is owned by uid {st.st_uid}, neither root nor this user "
            f"(uid {os.geteuid()}), who could put something else in its place; make it root's "
            f"or this user's (chown)",
        )
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISDIR(st.st_mode) or mode & stat.S_ISVTX:
        return  # a link's own mode means nothing; in a sticky folder only an entry's owner moves it
    if not _writable_by_others(st):
        return
    if foreign is not None and not mode & stat.S_IWOTH:
        foreign.append(f"{folder}, on its path, may be written by group {st.st_gid}")
        return
    if not _is_mount_point(folder, st):
        raise _refused(
            what,
            path,
            f"{folder}, on its path, may be written by group or others (mode {mode:04o}) and "
            "is not sticky, so another user could put something else in its place; give a "
            f"path whose every folder only root or this user may change (chmod go-w {folder})",
        )
    if folder in _warned:  # the state directory's, then its runs.db's folder
        return
    _warned.add(folder)
    log.warning(
        f"the {what} is in a volume whose root others may write: whoever else mounts it could "
        "put another folder in its place (in a pod only its own containers do)",
        extra={"fields": {"path": str(path), "mount": str(folder), "mode": f"{mode:04o}"}},
    )


def _is_mount_point(folder: Path, st: os.stat_result) -> bool:
    """A filesystem's root (another device than its parent's), or a bind mount (same device:
    only ``/proc/self/mountinfo`` tells)."""
    if folder.parent != folder and os.stat(folder.parent).st_dev != st.st_dev:
        return True
    return os.path.realpath(folder) in mount_points()


def mount_points() -> frozenset[str]:
    """This process's mount points, as ``/proc/self/mountinfo`` lists them (none if it cannot
    be read): a bind mount of a folder of the same file system has its device, so only this
    list tells it."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as info:
            lines = info.read().splitlines()
    except OSError:
        return frozenset()
    # The 5th field is the mount point.
    return frozenset(
        _OCTAL.sub(lambda m: chr(int(m[1], 8)), f[4]) for f in map(str.split, lines) if len(f) > 4
    )


def _check_file(
    path: Path, contents: Callable[[Path], None] | None = None, *, one_name: bool = False
) -> list[str]:
    with _held(path) as (fd, st):
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            raise _refused("run store", path, "it is a symbolic link")
        if not stat.S_ISREG(st.st_mode):
            raise _refused("run store", path, "it is not a regular file")
        _check_owner(path, "run store", st)
        if one_name and st.st_nlink > 1:  # at start, and a file put back under a writer
            # SQLite keeps the -wal and -shm beside the name it opens: writers using two names
            # write two journals, and the last checkpoint writes over the other's pages.
            raise _refused(
                "run store",
                where := path.absolute(),
                f"it has {st.st_nlink} names (hard links), and SQLite keeps its -wal and -shm"
                " beside the name it is opened by: two crontasks writing it by two names corrupt"
                f" it; remove the other names (find / -xdev -samefile {shlex.quote(str(where))}"
                " lists them; a copy made with cp -al or ln is one: copy with cp instead), and"
                " give every crontask that shares it the same --db",
            )
        if contents is not None:
            contents(path)
        if mode & _SHARED:
            return [_tighten(fd, path, mode, mode & PRIVATE_FILE)]
        return []


@contextlib.contextmanager
def _held(path: Path) -> Iterator[tuple[int, os.stat_result]]:
    """What is at ``path`` itself (a link is held, not followed), with its ``fstat``: what is
    checked is what is then changed, whatever is renamed into ``path`` meanwhile (our own group
    may write the folder). An ``O_PATH`` descriptor opens nothing for reading: closing it,
    unlike closing any other descriptor of the file, leaves this process's SQLite locks on
    the file in place. Raises FileNotFoundError if nothing is there."""
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        yield fd, os.fstat(fd)
    finally:
        os.close(fd)


def _check_owner(path: Path, what: str, st: os.stat_result) -> None:
    if st.st_uid != os.geteuid():
        raise _refused(
            what,
            path,
            f"it is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()}), so "
            "another user could have placed what is in it",
        )


def _tighten(fd: int, path: Path, mode: int, private: int) -> str:
    # fchmod refuses an O_PATH descriptor; its /proc link is the held file itself (never a
    # link: those were refused), wherever its name has gone since.
    try:
        os.chmod(f"/proc/self/fd/{fd}", private)
    except FileNotFoundError:
        raise OSError(f"cannot make {path} private: /proc is not mounted") from None
    return f"{path} ({mode:04o})"


def _warn(tightened: list[str], what: str) -> None:
    if tightened:
        log.warning(
            f"{what} was readable by others: made private",
            extra={"fields": {"paths": ", ".join(tightened)}},
        )
