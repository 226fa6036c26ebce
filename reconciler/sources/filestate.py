"""What the directory source keeps of one file: its signature, and what it defined when read.

- A file's signature is (mtime, ctime, size, inode) of what its path leads to. A refresh
  re-reads only the files whose signature changed, so a periodic full refresh is cheap and
  heals missed events; the ctime, which no tool sets, catches a rewrite that kept the mtime
  and the size (``cp -p``, ``rsync -t`` of a reproducible build).
- A file that cannot be looked at (a folder on its way lost its search permission, an I/O
  error) is not a file gone: its signature is ``UNKNOWN``, never a real one, and the reading
  says why.
- A :class:`FileState` holds the last good definitions of its file: while the file has errors
  they stay in force, each carrying the first error.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path
from stat import S_ISDIR

from reconciler.core.desired import Definition, DefinitionError
from reconciler.sources.docwarnings import DocumentWarning

Signature = tuple[int, int, int, int]  # (mtime_ns, ctime_ns, size, inode)
# The signature of a file that cannot be looked at (see signature_of): never a real one.
UNKNOWN: Signature = (-1, -1, -1, -1)
# What stat says of a path with nothing there; any other error says nothing of the file.
GONE = (errno.ENOENT, errno.ENOTDIR)


@dataclasses.dataclass(frozen=True, slots=True)
class FileState:
    signature: Signature
    good: tuple[Definition, ...] | None  # None: never read successfully
    errors: tuple[DefinitionError, ...]
    ignored: int = 0
    revision: str | None = None  # the source's revision when the file was read
    warnings: tuple[DocumentWarning, ...] = ()  # documents ignored but said (a pasted CronJob)

    def in_force(self) -> tuple[Definition, ...]:
        if self.good is None:
            return ()
        if not self.errors:
            return self.good
        first = str(self.errors[0])
        return tuple(dataclasses.replace(d, error=first) for d in self.good)

    def keys(self) -> set[str]:
        keys = {d.key for d in self.good or ()}
        keys.update(e.key for e in self.errors if e.key)
        return keys


def signature_of(path: Path) -> Signature | None:
    """(mtime, ctime, size, inode) of what ``path`` leads to; None if there is no file there. A
    path that cannot be followed (a link loop, a link to nothing) gets its link's own, and the
    reading says why: a link whose target runs through a file (``notes.txt/x``) too, as
    ``ENOTDIR`` from ``stat`` is of the target, not of the link. One that cannot be looked at
    (a folder on its way that may not be searched, an I/O error) gets ``UNKNOWN``: the file
    may well be there, so its tasks stay, and the reading says why."""
    try:
        stat = os.stat(path)
    except OSError:
        try:
            stat = os.lstat(path)
        except OSError as err:
            return None if err.errno in GONE else UNKNOWN
    if S_ISDIR(stat.st_mode):
        return None
    return (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)
