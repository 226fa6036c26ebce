"""Real disk faults for the run store's SQLite file: the kernel refuses the writes, nothing is
mocked.

- :class:`SmallDisk`: a tmpfs of a few MiB mounted on a folder; :meth:`SmallDisk.fill` writes a
  filler file until ``ENOSPC`` (SQLite: ``SQLITE_FULL``, "database or disk is full"), and
  :meth:`SmallDisk.clear` deletes it. Mounting needs ``CAP_SYS_ADMIN`` (root here).
- :func:`immutable`: ``chattr +i`` on files, so that the kernel refuses every write, even through
  descriptors opened before (``EPERM``: SQLite says "disk I/O error"), and every new open for
  writing (SQLite then opens the database read-only: "attempt to write a readonly database").
  ``chmod`` would not do: root ignores it, and it does not affect open descriptors. Needs
  ``CAP_LINUX_IMMUTABLE`` (root here) and a filesystem with the flag (ext4, tmpfs on Linux 6+).
- :func:`file_size_limit`: ``RLIMIT_FSIZE`` lowered for this process, as a quota would (CPython
  ignores ``SIGXFSZ``, so a write past the limit fails with ``EFBIG``: SQLite says "disk I/O
  error"). Needs no privilege, so this one runs everywhere.

Where a fault cannot be made (not root, no tmpfs), :func:`require` skips with the reason.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

_CHUNK = 64 * 1024


@functools.cache
def _can_mount() -> str | None:
    """None if a tmpfs can be mounted here, else why not."""
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", scratch],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}"
        subprocess.run(["umount", scratch], check=True)
    return None


@functools.cache
def _can_chattr() -> str | None:
    """None if ``chattr +i`` works on files under the temporary folder, else why not."""
    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch) / "probe"
        probe.write_bytes(b"")
        done = subprocess.run(
            ["chattr", "+i", str(probe)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            return f"cannot make a file immutable here (needs root): {done.stderr.strip()}"
        subprocess.run(["chattr", "-i", str(probe)], check=True)
    return None


def require(fault: str) -> None:
    """Skip the calling test if ``fault`` (``"full"`` or ``"read-only"``) cannot be made."""
    why = {"full": _can_mount, "read-only": _can_chattr}.get(fault, lambda: None)()
    if why is not None:
        pytest.skip(why)


class SmallDisk:
    """A tmpfs of ``size`` bytes mounted on ``path`` (created if missing) until :meth:`unmount`;
    ``noexec``: mounted so, as a hardened /tmp often is."""

    def __init__(self, path: Path, size: int = 8 * 1024 * 1024, *, noexec: bool = False) -> None:
        self.path = path
        self.filler = path / "filler"
        path.mkdir(parents=True, exist_ok=True)
        options = f"size={size},mode=0755" + (",noexec" if noexec else "")
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
            check=True,
            capture_output=True,
        )

    def fill(self) -> None:
        """Take every free byte: the next write that needs a new block fails with ENOSPC."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (_CHUNK, 512, 1):  # down to the last byte of the last block
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * size)
        finally:
            os.close(fd)
        probe = os.statvfs(self.path)
        assert probe.f_bavail == 0, "the disk is not full"

    def clear(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        # Lazily if something still holds a file (a test failing while crontask runs): the
        # mount is gone from the tree at once and freed when the last file is closed.
        done = subprocess.run(["umount", str(self.path)], capture_output=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=False)


def set_immutable(paths: Iterable[Path], on: bool) -> None:
    for path in paths:
        if path.exists():
            subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True)


@contextlib.contextmanager
def immutable(paths: Iterable[Path]) -> Iterator[None]:
    """The files are read-only for everyone, root and open descriptors included, inside."""
    paths = list(paths)
    set_immutable(paths, True)
    try:
        yield
    finally:
        set_immutable(paths, False)


def sqlite_files(db: Path) -> list[Path]:
    """The database file and its write-ahead log (what a write touches in WAL mode)."""
    return [db, db.with_name(db.name + "-wal")]


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """No file of this process may grow past ``limit`` bytes, inside."""
    assert signal.getsignal(signal.SIGXFSZ) is signal.SIG_IGN, "SIGXFSZ would kill the process"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


KINDS = ("full", "read-only", "file-size-limit")


class DiskFault:
    """One kind of fault (:data:`KINDS`) on the folder that holds ``runs.db``; :meth:`start`
    and :meth:`end` it as often as needed, :meth:`close` at the end. Make it before the store
    opens the folder (a full disk is a tmpfs mounted on it). ``file-size-limit`` applies to
    this process only."""

    def __init__(self, kind: str, state_dir: Path) -> None:
        require(kind)
        self.kind = kind
        self.state_dir = state_dir
        self.db = state_dir / "runs.db"
        self.disk = SmallDisk(state_dir) if kind == "full" else None
        self._limit: contextlib.ExitStack | None = None
        state_dir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        if self.disk is not None:
            self.disk.fill()
        elif self.kind == "read-only":
            set_immutable(sqlite_files(self.db), True)
        else:
            # The limit applies to the offset written at, not to growth: with a limit of one byte
            # no write lands, even where a file (the checkpointed log) has room.
            self._limit = contextlib.ExitStack()
            self._limit.enter_context(file_size_limit(1))

    def end(self) -> None:
        if self.disk is not None:
            self.disk.clear()
        elif self.kind == "read-only":
            set_immutable(sqlite_files(self.db), False)
        elif self._limit is not None:
            self._limit.close()
            self._limit = None

    def close(self) -> None:
        self.end()
        if self.disk is not None:
            self.disk.unmount()
