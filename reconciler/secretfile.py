"""Small files that hold a secret (a token, a webhook, JWT or session secret, a notification
URL, the auth file): read whole, bounded, and only if they are regular files that no one but
root and crontask's own user may change.

Such a file is read at start or again at each use (a rotated token is picked up), so what is
in its place matters every time: a FIFO would block the reader until a writer came (opened
here without waiting, and refused), a device such as ``/dev/zero`` would never end (refused
from ``stat`` before it is opened: opening some devices acts), and a large file is refused
after ``limit + 1`` bytes. One reader for all of them, so that none forgets a case.

Whoever may change such a file decides what crontask trusts: an auth file another user may
write lets them add an admin token for themselves (it is read again within a second), and so
run commands as crontask's user. So ``statedir``'s rule applies (one rule, not a copy): the
file read (links followed, as the read does) is refused if anyone may write it; so is it if a
folder on its path (as given, and as its links lead) may be written by anyone and is not
sticky: they could put a link to a file whose bytes they know in its place. A file or folder
another user owns, or a group other than the process's own may write, is read with one
warning line: unlike the state directory, crontask did not make it, it was given it, and
its owner is often the admin who did (a file bind-mounted from the host into a container,
written under a umask of 002; a Kubernetes Secret with a group-writable ``defaultMode``).
A Kubernetes Secret mount passes (root's links ``..data/...`` to files 0644 or 0444). A file
refused at run time is as a broken one: the caller keeps what it read before.

A file others may read (and reach: every folder on the way searchable by them) is read, with
one warning line per file; ``public=True`` (a public key) says nothing.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from reconciler import statedir

log = logging.getLogger("crontask")

MAX_SECRET_FILE_BYTES = 64 * 1024  # a token or a secret is a few hundred bytes
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
_FIX = "make it writable by its owner only (chmod go-w)"
_READABLE = "a secret file others may read: any user of this host can read the secret (chmod o-r)"
# The warnings this process gave, of which files (one line each, not one a read).
_warned: set[tuple[str, str]] = set()


def read_secret_file(
    path: Path, limit: int = MAX_SECRET_FILE_BYTES, *, public: bool = False
) -> bytes:
    """The bytes of ``path``. Raises ValueError, whose message is to follow the file's name
    (``not a regular file: not read``), for a file that is not a regular one, one over
    ``limit`` bytes, one that cannot be read, or one another user may change (the module
    says which). ``public``: no warning when others may read it."""
    foreign: list[str] = []  # what another user owns: said, not refused
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ValueError("not a regular file: not read")
        statedir.check_ancestors(path, "secret file", follow=True, foreign=foreign)
        fd = os.open(path, _FLAGS)
        with os.fdopen(fd, "rb") as handle:
            st = os.fstat(fd)  # the file opened, whatever its name leads to by now
            if not stat.S_ISREG(st.st_mode):  # replaced since the stat
                raise ValueError("not a regular file: not read")
            if (why := statedir.others_may_write_it(st)) is not None:
                raise ValueError(
                    f"{why}, so another user could change what crontask reads: not read; {_FIX}"
                )
            if st.st_uid not in (0, os.geteuid()):
                foreign.append(f"it is owned by uid {st.st_uid}")
            if (why := statedir.group_or_others_may_write(st)) is not None:
                foreign.append(why)
            data = handle.read(limit + 1)
    except statedir.Refused as err:
        raise ValueError(f"{err.reason}: not read") from None
    except OSError as err:
        raise ValueError(f"cannot read: {err.strerror or type(err).__name__}") from None
    if len(data) > limit:
        raise ValueError(f"larger than {_size(limit)}: not read")
    if foreign:
        _warn_once(
            path,
            "a secret file another user may change: read, but whoever may change it decides "
            "what crontask trusts (make it root's or this user's, writable by its owner only)",
            {"why": "; ".join(foreign)},
        )
    if not public:
        _warn_if_readable(path, st)
    return data


def _warn_once(path: Path, message: str, fields: dict[str, str]) -> None:
    if (message, str(path)) in _warned:
        return
    _warned.add((message, str(path)))
    log.warning(message, extra={"fields": {"path": str(path), **fields}})


def _warn_if_readable(path: Path, st: os.stat_result) -> None:
    """One warning line per file others may read and reach (its folders searchable); not for
    a Kubernetes Secret's (read through ``..data``): 0644 is its default, and in a pod the
    other users are its own containers'. Looked at until warned of: a file read at every
    request (the webhook secret) costs no more than its read once told."""
    if (_READABLE, str(path)) in _warned:
        return
    data = path.parent / "..data"  # kubelet's link to the volume's current files
    if data.is_symlink() and Path(os.path.realpath(path)).is_relative_to(os.path.realpath(data)):
        return
    if st.st_mode & stat.S_IROTH and _reachable(path):
        _warn_once(path, _READABLE, {"mode": f"{stat.S_IMODE(st.st_mode):04o}"})


def _reachable(path: Path) -> bool:
    """Whether others may search every folder on the way to where ``path`` leads."""
    try:
        folders = Path(os.path.realpath(path)).parents
        return all(os.stat(folder).st_mode & stat.S_IXOTH for folder in folders)
    except OSError:
        return False


def _size(limit: int) -> str:
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"
