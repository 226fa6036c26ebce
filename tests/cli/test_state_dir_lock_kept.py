"""The state directory's lock holds when its lock file is deleted (a tmp cleaner, a hand's
``rm``): the directory itself is locked too, so a second crontask is refused all the same.
Where the directory cannot be locked (some NFS), the lock file alone holds, as before; a lock
file that is not a regular file (a FIFO) is refused by name, without waiting on it."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import statedir

HOLD = """\
import sys
from pathlib import Path
from reconciler import statedir
statedir.lock(Path(sys.argv[1]))
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Path]:
    """A state directory another process holds (its lock), until the test ends."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        yield state
    finally:
        holder.communicate(timeout=30)  # its stdin closed: it lets go


def test_a_held_state_directory_is_refused_naming_its_holder(held: Path) -> None:
    with pytest.raises(statedir.Refused, match=r"in use by another crontask \(pid \d+\)"):
        statedir.lock(held)


def test_a_held_state_directory_whose_lock_file_was_deleted_is_refused(held: Path) -> None:
    (held / statedir.LOCK_FILE).unlink()
    try:
        with pytest.raises(statedir.Refused, match="in use by another crontask"):
            statedir.lock(held)
    finally:
        statedir.unlock(held)


@pytest.mark.parametrize("code", [errno.EBADF, errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP])
def test_a_directory_that_cannot_be_locked_leaves_the_lock_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    flock = fcntl.flock

    def no_directory_locks(fd: int, operation: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(code, os.strerror(code))
        flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", no_directory_locks)
    statedir.lock(tmp_path)
    try:
        assert statedir.holds(tmp_path)
        assert (tmp_path / statedir.LOCK_FILE).read_text().split()[0] == str(os.getpid())
    finally:
        statedir.unlock(tmp_path)


def test_a_lock_file_that_is_a_fifo_is_refused_by_name(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / statedir.LOCK_FILE)
    lock = str(tmp_path / statedir.LOCK_FILE)
    with pytest.raises(statedir.Refused, match=f"{lock}.*not a regular file"):
        statedir.lock(tmp_path)  # no reader: an open without O_NONBLOCK would wait for ever
    assert not statedir.holds(tmp_path)
