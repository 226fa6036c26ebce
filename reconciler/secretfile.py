"""Small files that hold a secret (a token, a webhook, JWT or session secret, a notification
URL): read whole, bounded, and only if they are regular files.

Such a file is read at start or again at each use (a rotated token is picked up), so what is
in its place matters every time: a FIFO would block the reader until a writer came (opened
here without waiting, and refused), a device such as ``/dev/zero`` would never end (refused
from ``stat`` before it is opened: opening some devices acts), and a large file is refused
after ``limit + 1`` bytes. One reader for all of them, so that none forgets a case.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_SECRET_FILE_BYTES = 64 * 1024  # a token or a secret is a few hundred bytes
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


def read_secret_file(path: Path, limit: int = MAX_SECRET_FILE_BYTES) -> bytes:
    """The bytes of ``path``. Raises ValueError, whose message is to follow the file's name
    (``not a regular file: not read``), for a file that is not a regular one, one over
    ``limit`` bytes, or one that cannot be read."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ValueError("not a regular file: not read")
        fd = os.open(path, _FLAGS)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since the stat
                raise ValueError("not a regular file: not read")
            data = handle.read(limit + 1)
    except OSError as err:
        raise ValueError(f"cannot read: {err.strerror or type(err).__name__}") from None
    if len(data) > limit:
        raise ValueError(f"larger than {_size(limit)}: not read")
    return data


def _size(limit: int) -> str:
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"
