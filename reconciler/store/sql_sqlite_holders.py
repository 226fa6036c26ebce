"""Whether a run store's SQLite file may be replaced by the file now at its path: SQLite names
a file's -wal, -shm and -journal after its path, not after the file, so a file put back at the
path (a restored backup) shares them with the old one. A process that still has the old file
open (a ``sqlite3`` shell, another crontask on the same ``--db``) writes its frames there, and
SQLite applies them to the new file (rows silently wrong, or a corrupt file); one that stopped
left them behind (SQLite checkpoints and removes a -wal at the close only while its file is
still at the path). ``SqliteFile._back`` asks these before it takes a file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from reconciler.store.base import StoreUnavailable

_PROC: Final = Path("/proc")
_SIDE: Final = ("-wal", "-shm", "-journal")
# A -wal's frames, or a hot -journal's pages, are written into the file SQLite opens next.
_APPLIED: Final = ("-wal", "-journal")
# The most descriptors looked through (a stat each, about 13 us): this runs only while the
# store's file is lost, at each try of its records; a user with more (as root: every
# process's) is told the look was given up.
SCAN_MOST: Final = 20_000


def refuse_shared(old: tuple[int, int], path: Path) -> bool:
    """Raise StoreUnavailable, saying why, if the file at ``path`` must not replace the file
    ``old`` (device, inode) yet: another process has the old file or the side files at the
    path open, or a -wal or -journal with something in it is there. False: this process has
    one open still (its pooled connections close at their next checkout), True: neither.
    A process that has the file at the path itself open took it already (another crontask on
    the same ``--db``): the side files are that file's then, in use, and never to be moved."""
    holder, taken = _holder(old, path)
    if holder == os.getpid():
        return False
    if holder is not None:
        raise StoreUnavailable(
            f"the old file is still open in process {holder}: stop it (what it writes to"
            f" {path.name}-wal would be applied to this file)"
        )
    if taken:
        return True
    for suffix in _APPLIED:
        side = path.with_name(path.name + suffix)
        try:
            size = os.stat(side).st_size
        except FileNotFoundError:
            continue
        if size:
            raise StoreUnavailable(
                f"{side.name} is not empty, and not known to be this file's (SQLite would"
                f" apply it to this file): move it and {path.name}-shm away if the file is"
                " a backup"
            )
    return True


def _holder(old: tuple[int, int], path: Path) -> tuple[int | None, bool]:
    """A process of this user's with a descriptor on ``old``, or on a side file at ``path``
    without one on the file at ``path`` itself (another's first; None: none); and whether a
    process has the file at ``path`` open (it took it: the side files are its). Descriptors
    opened ``O_PATH`` (``SqliteFile._hold``: any crontask's) neither lock nor write, and are
    passed over."""
    sides: set[tuple[int, int]] = set()
    for suffix in _SIDE:
        try:
            st = os.stat(path.with_name(path.name + suffix))
        except OSError:
            continue
        sides.add((st.st_dev, st.st_ino))
    try:
        now = os.stat(path)
        new = {(now.st_dev, now.st_ino)}
    except OSError:
        new = set()
    try:
        pids = [name for name in os.listdir(_PROC) if name.isdigit()]
    except FileNotFoundError:
        raise StoreUnavailable(
            "cannot tell whether the old file is still open (no /proc)"
        ) from None
    targets = {old} | sides | new
    own, seen, found, taken = os.getpid(), 0, None, False
    for pid in pids:
        try:
            fds = os.listdir(_PROC / pid / "fd")
        except OSError:
            continue  # another user's, or ended
        seen += len(fds)
        if seen > SCAN_MOST:
            raise StoreUnavailable(
                "cannot tell whether the old file is still open (more than"
                f" {SCAN_MOST} descriptors to look through)"
            )
        held = {on for fd in fds if (on := _on(pid, fd, targets)) is not None}
        taken = taken or bool(held & new)
        if old in held or (held & sides and not held & new):
            if int(pid) != own:
                return int(pid), taken
            found = own
    return found, taken


def _on(pid: str, fd: str, targets: set[tuple[int, int]]) -> tuple[int, int] | None:
    """Which of ``targets`` the descriptor ``fd`` of ``pid`` is on, unless opened O_PATH."""
    try:
        st = os.stat(_PROC / pid / "fd" / fd)
        if (on := (st.st_dev, st.st_ino)) not in targets:
            return None
        with open(_PROC / pid / "fdinfo" / fd) as info:
            flags = next(int(line.split()[1], 8) for line in info if line.startswith("flags:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None  # closed meanwhile (the listing's own descriptor among them)
    return None if flags & os.O_PATH else on
